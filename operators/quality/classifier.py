"""``classifier_score``: a trained linear quality classifier's score for each document.

The model is trained by ``tamis train-classifier`` (jobs/train.py) and stored as a file in
the format of :mod:`operators.quality.classifier_model`; the pipeline names it by URI in the
``model`` field, and jobs/ reads it (the operator never touches storage) and hands it to
the operator as its artifact table.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from operators.base import MapOperator, OperatorConfig, set_column
from operators.quality.classifier_model import ClassifierModel, ModelFormatError, ngram_features
from operators.registry import register

EMBEDDING = "embedding"


class ClassifierScoreConfig(OperatorConfig):
    """Which model, what it reads, and where its score goes."""

    model: str = Field(
        min_length=1,
        description="URI of a model written by `tamis train-classifier`: an absolute local path or "
        "s3://bucket/key (read with the pipeline's store_options). jobs/ reads it when the run "
        "starts; its SHA-256, not the URI, is part of the stage fingerprint.",
    )
    input: Literal["text", "embedding"] = Field(
        "text",
        description="What the model scores: `text` for an ngram model, `embedding` (the fixed-size "
        "float list column) for an embedding model; must match the model's kind.",
    )
    column: str = Field(
        "quality_classifier_score",
        pattern=r"^quality_[a-z0-9_]+$",
        description="Column written with the score (float64); two classifiers need two names.",
    )


class EmbeddingSizeError(ValueError):
    """An ``embedding`` value whose length is not the model's: the wrong embedding model upstream."""


def score_ngrams(model: ClassifierModel, weights: np.ndarray, texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The model's score of each text (``weights``: :meth:`ClassifierModel.dense_weights`)."""
    rows = ngram_features(texts, model.ngram)
    z = np.bincount(rows.rows, weights=weights[rows.columns] * rows.values, minlength=rows.num_rows)
    return pa.array(model.apply_link(z + model.bias), pa.float64())


def score_embeddings(model: ClassifierModel, weights: np.ndarray, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The model's score of each embedding; null where the embedding is null.

    Raises:
        EmbeddingSizeError: A non-null embedding's length is not the model's ``dimensions``.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float32()))
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    present = column.filter(pa.array(valid)) if column.null_count else column
    lengths = pc.list_value_length(present).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths.min() != model.dimensions or lengths.max() != model.dimensions):
        wrong = int(lengths[lengths != model.dimensions][0])
        raise EmbeddingSizeError(f"an embedding of {wrong} values reached a model trained on {model.dimensions}: "
                                 "score embeddings of the model the classifier was trained with")
    values = pc.list_flatten(present).to_numpy(zero_copy_only=False).astype(np.float64)
    z = values.reshape(len(present), model.dimensions) @ weights + model.bias
    scores = np.full(len(column), np.nan)
    scores[valid] = model.apply_link(z)
    return pa.array(scores, pa.float64(), mask=~valid)


@register("classifier_score")
class ClassifierScore(MapOperator[ClassifierScoreConfig]):
    """A trained linear classifier's score for each document (no rows are dropped).

    Algorithm: a linear model plus the model's link (logistic: ``1 / (1 + exp(-z))``, a
    score in (0, 1); identity for a ridge head), on either of two inputs. ``ngram``: word
    unigram and bigram counts hashed into buckets and L2-normalized, the features of DCLM's
    fastText quality filter (Li et al. 2024, arXiv 2406.11794); a linear model on hashed
    n-grams, not fastText's low-rank embedding model. ``embedding``: a linear head on the
    ``embedding`` column, as FineWeb-Edu's classifier (Penedo et al. 2024, arXiv
    2406.17557). Features and file format: :mod:`operators.quality.classifier_model`.

    Reads: ``text`` (ngram models) or ``embedding`` (embedding models). Writes: the
    ``column`` of the config (default ``quality_classifier_score``, float64; null where the
    embedding is null), replacing it when present. Drop reasons: none; filter on the
    column. Deterministic: a document's score depends on its text (or embedding) and the
    model's bytes alone. jobs/ reads the model named by ``model`` (``model_field``) and
    passes it as the artifact; its SHA-256 is in the stage fingerprint, so retraining
    re-runs scoring.
    """

    keeps_rows = True
    version = 1
    Config = ClassifierScoreConfig
    model_field: ClassVar[str] = "model"

    def __init__(self, config: ClassifierScoreConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        if artifact is None:
            raise ModelFormatError(f"classifier_score got no model table for {config.model}: jobs/ reads the "
                                   "file named by `model` and passes it as the artifact")
        self.model = self.read_model(config, artifact)
        self._weights = self.model.dense_weights()

    @classmethod
    def read_model(cls, config: ClassifierScoreConfig, table: pa.Table) -> ClassifierModel:
        """The model in ``table``, checked against ``config``.

        Raises:
            ModelFormatError: Not a tamis classifier, or of a kind that does not score ``input``.
        """
        model = ClassifierModel.from_table(table)
        expected = "ngram" if config.input == "text" else "embedding"
        if model.kind != expected:
            raise ModelFormatError(f"an {model.kind} model cannot score input {config.input!r}; set "
                                   f"`input: {'text' if model.kind == 'ngram' else 'embedding'}`")
        return model

    @classmethod
    def check_model(cls, config: OperatorConfig, table: pa.Table) -> dict[str, Any]:
        """What jobs/ records about the model in run.json; raises :class:`ModelFormatError`."""
        model = cls.read_model(config, table)  # type: ignore[arg-type]
        return {"model_kind": model.kind, "model_link": model.link,
                "model_content_sha256": model.content_sha256(),
                "model_validation": model.training.get("validation", {})}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        return ("text",) if config.input == "text" else (EMBEDDING,)  # type: ignore[attr-defined]

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        return (config.column,)  # type: ignore[attr-defined]

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Append (or replace) the score column for every row of ``batch``."""
        if self.model.kind == "ngram":
            scores = score_ngrams(self.model, self._weights, batch["text"])
        else:
            scores = score_embeddings(self.model, self._weights, batch[EMBEDDING])
        return set_column(batch, self.config.column, scores)
