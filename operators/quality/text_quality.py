"""``text_quality_score``: the composite text-quality score of Sharma et al. 2024.

Reference: Sharma, Padthe et al. 2024, "Text Quality-Based Pruning for Efficient Training
of Language Models", arXiv 2405.01582, section 3. The paper scores every line with a set of
heuristic filters, each with a weight, and a document by its lines weighted by token count:

    score(line) = sum_i w_i I_i(line) / sum_i w_i
    score(doc)  = sum_line tc(line) score(line) / sum_line tc(line)

where ``I_i(line)`` is 1 when the line passes filter ``i`` and ``tc`` a line's token count.
The paper weighs filter ``i`` by how much keeping only the data that passes it lowers a
language model's perplexity: ``w_i = max(0, (PPL_all - PPL_i) / PPL_all)``.

tamis's reading, where the paper leaves room or needs a model:

* The filters are the 14 line rules of :mod:`operators.quality.text_quality_rules` (C4's
  line rules, Gopher's word and line rules at line level, RedPajama-v2-style capital and
  digit shares, repeated lines). The paper's exact filter list is not reproduced.
* A line's tokens are its words as the other quality families count them (datatrove's
  ``split_into_words``, :mod:`operators.quality.words`), not a language model's tokens.
* Default weights are 1 each (the score is then the word-weighted share of rules passed);
  the paper's perplexity-derived weights are tied to its model and data.
* ``calibrate`` learns weights without a language model: the paper's formula with the
  perplexity of the kept data replaced by the share of *contrast* words among the words
  kept by the rule, the reference and contrast sets weighed equally. With ``p_i`` and
  ``q_i`` the shares of reference and contrast words in lines passing rule ``i``::

      w_i = max(0, (B - B_i) / B),  B = 1/2,  B_i = q_i / (p_i + q_i)
          = max(0, (p_i - q_i) / (p_i + q_i))

  A rule that keeps the reference and drops the contrast weighs 1; one that treats both
  alike, or drops the reference more, weighs 0.

The composite is the map ``text_quality_score.score`` alone, or, with ``calibrate``, the fit
``text_quality_score.calibrate`` then the map ``text_quality_score.score_calibrated``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from operators.base import Composite, FitOperator, MapOperator, OperatorConfig, Part, set_column
from operators.quality.text_quality_rules import (RULES, TextQualityRules, TextQualityWeights,
                                                  combine, rule_words)
from operators.quality.text_stats import TextStats, numpy, text_stats
from operators.registry import register
from operators.xxh64 import xxh64_hashes

logger = logging.getLogger(__name__)

SCORE = "quality_text_score"
WORDS = "quality_text_words"
ARTIFACT_SCHEMA = pa.schema([
    ("rule", pa.string()), ("weight", pa.float64()), ("reference_share", pa.float64()),
    ("contrast_share", pa.float64()), ("fitted", pa.bool_()),
    ("reference_documents", pa.int64()), ("contrast_documents", pa.int64()),
])
"""One row per rule: its weight, the share of reference and contrast words passing it,
whether the weights were fitted (false: every learned weight was 0, config weights kept)."""


def rule_column(rule: str) -> str:
    """The column holding the share of a document's words in lines passing ``rule``."""
    return f"quality_text_{rule}"


class TextQualityCalibration(OperatorConfig):
    """Where the fit finds its reference (good) documents; give exactly one way."""

    reference_source: str | None = Field(
        None, description="Documents whose `source` equals this are the reference; every other "
        "document is the contrast.")
    label_column: str | None = Field(
        None, description="A boolean or numeric column: true or > 0 marks a reference document, "
        "false or <= 0 a contrast one, null leaves the document out.")
    max_documents: int = Field(
        50_000, ge=1, description="Most documents read per set (reference, contrast): those whose "
        "id hashes smallest (xxHash64), so the sample does not depend on order or batches.")

    @model_validator(mode="after")
    def _one_reference(self) -> TextQualityCalibration:
        if (self.reference_source is None) == (self.label_column is None):
            raise ValueError("give exactly one of reference_source and label_column")
        return self


class TextQualityConfig(OperatorConfig):
    """Rules, weights, optional calibration and which columns to write."""

    rules: TextQualityRules = Field(TextQualityRules(), description="Thresholds of the line rules.")
    weights: TextQualityWeights = Field(
        TextQualityWeights(), description="Weight per rule (used as given without calibrate; with "
        "it, a weight of 0 still leaves its rule out).")
    calibrate: TextQualityCalibration | None = Field(
        None, description="Learn the weights from a reference set first (null: use weights).")
    rule_columns: bool = Field(
        True, description="Also write quality_text_words and quality_text_<rule> for every rule.")


def _schema(config: TextQualityConfig) -> pa.Schema:
    fields = [pa.field(SCORE, pa.float64())]
    if config.rule_columns:
        fields.append(pa.field(WORDS, pa.int64()))
        fields += [pa.field(rule_column(rule), pa.float64()) for rule in RULES]
    return pa.schema(fields)


class _TextQualityMap(MapOperator[TextQualityConfig]):
    """Shared by both score maps: the rule shares, combined with :meth:`weights`."""

    keeps_rows = True
    Config = TextQualityConfig
    reads = ("text",)

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        """``quality_text_score``, then the word count and rule shares if ``rule_columns``."""
        if not isinstance(config, TextQualityConfig):
            raise TypeError(f"{cls.name} needs a TextQualityConfig, got {type(config).__name__}")
        return tuple(_schema(config).names)

    def weights(self) -> np.ndarray:
        """Rule weights in :data:`RULES` order."""
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Append (or replace) the score columns for every row of ``batch``."""
        found = rule_words(text_stats(batch["text"]), self.config.rules)
        shares = found.shares()
        columns = {SCORE: combine(shares, self.weights()), WORDS: found.words.astype(np.int64)}
        columns.update({rule_column(rule): shares[:, i] for i, rule in enumerate(RULES)})
        for field in _schema(self.config):
            batch = set_column(batch, field.name, pa.array(columns[field.name], type=field.type))
        return batch


@register("text_quality_score.score")
class TextQualityScore(_TextQualityMap):
    """Each document's text-quality score with the configured weights (Sharma et al. 2024).

    Every line is tested by the 14 rules; ``quality_text_<rule>`` is the share of the
    document's words in lines passing the rule, and ``quality_text_score`` is
    ``sum_i w_i share_i / sum_i w_i`` (0 for a document without words), which equals the
    paper's token-weighted mean of line scores. See :mod:`operators.quality.text_quality`.

    Reads: text. Writes: quality_text_score (float64 in [0, 1]) and, with ``rule_columns``,
    quality_text_words (int64) and quality_text_<rule> (float64 in [0, 1]). Drop reasons:
    none (a ``filter`` decides). Deterministic; no state beyond the config.
    """

    version = 1

    @classmethod
    def describe(cls, config: OperatorConfig) -> dict[str, Any]:
        """The weights the scores use."""
        if not isinstance(config, TextQualityConfig):
            return {}
        return {"weights": dict(zip(RULES, config.weights.vector().tolist()))}

    def weights(self) -> np.ndarray:
        """The configured weights."""
        return self.config.weights.vector()


@register("text_quality_score.score_calibrated")
class TextQualityScoreCalibrated(_TextQualityMap):
    """Each document's text-quality score with the weights fitted by ``calibrate``.

    As ``text_quality_score.score``, with the weights read from the upstream
    ``text_quality_score.calibrate`` artifact instead of the config.

    Reads: text. Writes: quality_text_score (float64 in [0, 1]) and, with ``rule_columns``,
    quality_text_words (int64) and quality_text_<rule> (float64 in [0, 1]). Drop reasons:
    none. Deterministic for a given artifact.
    """

    version = 1
    uses_artifact = True

    def __init__(self, config: TextQualityConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        if artifact is None or not {"rule", "weight"} <= set(artifact.column_names):
            raise ValueError(f"{self.name} needs the artifact of text_quality_score.calibrate "
                             f"(columns rule, weight); got "
                             f"{None if artifact is None else artifact.column_names}")
        fitted = dict(zip(artifact["rule"].to_pylist(), artifact["weight"].to_pylist()))
        if set(fitted) != set(RULES):
            raise ValueError(f"{self.name}: the calibration artifact's rules {sorted(fitted)} "
                             f"are not this version's {sorted(RULES)}")
        self._weights = np.array([fitted[rule] for rule in RULES], dtype=np.float64)

    def weights(self) -> np.ndarray:
        """The fitted weights."""
        return self._weights



class _BottomK:
    """The ``k`` documents of smallest (id hash, figures) seen so far, with their figures."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.hashes = np.zeros(0, dtype=np.uint64)
        self.figures = np.zeros((0, len(RULES) + 1), dtype=np.float64)  # words, passing...

    def bound(self) -> int | None:
        """Largest hash a new document may have and still be kept (None: any)."""
        if len(self.hashes) < self.k:
            return None
        return int(np.partition(self.hashes, self.k - 1)[self.k - 1])

    def add(self, hashes: np.ndarray, figures: np.ndarray) -> None:
        self.hashes = np.concatenate([self.hashes, hashes])
        self.figures = np.concatenate([self.figures, figures])
        if len(self.hashes) > 2 * self.k:  # amortized trim
            self.trim()

    def trim(self) -> None:
        # ties (one id twice) are broken by the figures, so the result is order-free
        order = np.lexsort((*self.figures.T[::-1], self.hashes))[:self.k]
        self.hashes, self.figures = self.hashes[order], self.figures[order]


@register("text_quality_score.calibrate")
class TextQualityCalibrate(FitOperator[TextQualityConfig]):
    """Learns the rule weights of ``text_quality_score`` from a reference set.

    Reads id, text and the reference marker (``source`` or ``label_column``) of every
    document; keeps, per set, the ``max_documents`` documents whose id hashes smallest
    (bottom-k, order-free; rows beyond the current k-th hash are not tokenized), and weighs
    rule ``i`` by ``max(0, (p_i - q_i) / (p_i + q_i))`` with ``p_i`` and ``q_i`` the shares
    of reference and contrast words in lines passing it (see the module docstring for how
    this reads the paper's perplexity weighting). A configured weight of 0 stays 0. When
    every weight comes out 0 (no rule separates the sets) the configured weights are kept
    and ``fitted`` is false. No reference or no contrast word at all fails the stage.

    Reads: id, text, source or the label column. Writes no document column: the artifact
    (one row per rule: rule, weight, reference_share, contrast_share, fitted,
    reference_documents, contrast_documents). Deterministic: the sample and the weights
    depend only on the documents, not on order, batches or workers.
    """

    version = 1
    Config = TextQualityConfig

    def __init__(self, config: TextQualityConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._counts = {"reference_seen": 0, "contrast_seen": 0, "reference_documents": 0,
                        "contrast_documents": 0}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        """id, text and where the reference marker lives."""
        if not isinstance(config, TextQualityConfig) or config.calibrate is None:
            raise TypeError(f"{cls.name} needs a TextQualityConfig with calibrate set")
        marker = config.calibrate.label_column or "source"
        return ("id", "text", marker)

    def metrics(self) -> dict[str, float]:
        """Documents seen and kept per set."""
        return dict(self._counts)

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        """The weights, fitted on bottom-k samples of the reference and contrast sets."""
        calibration = self.config.calibrate
        if calibration is None:
            raise TypeError(f"{self.name} needs calibrate in its config")
        samples = {1: _BottomK(calibration.max_documents), 0: _BottomK(calibration.max_documents)}
        for batch in batches:
            labels = self._labels(batch)
            hashes = xxh64_hashes(batch["id"])
            rows = []
            for label, sample in samples.items():
                chosen = np.flatnonzero(labels == label)
                self._counts["reference_seen" if label else "contrast_seen"] += len(chosen)
                bound = sample.bound()
                rows.append(chosen if bound is None else chosen[hashes[chosen] <= bound])
            take = np.concatenate(rows)
            if not len(take):
                continue
            text = batch["text"].take(pa.array(take))
            found = rule_words(TextStats(text), self.config.rules)
            figures = np.column_stack([found.words, found.passing])
            for label, sample in samples.items():
                mine = labels[take] == label
                if mine.any():
                    sample.add(hashes[take[mine]], figures[mine])
        for sample in samples.values():
            sample.trim()
        self._counts["reference_documents"] = len(samples[1].hashes)
        self._counts["contrast_documents"] = len(samples[0].hashes)
        return self._artifact(samples[1].figures, samples[0].figures)

    def _labels(self, batch: pa.Table) -> np.ndarray:
        """1 for a reference document, 0 for a contrast one, -1 for one left out."""
        calibration = self.config.calibrate
        if calibration is None:
            raise TypeError(f"{self.name} needs calibrate in its config")
        if calibration.reference_source is not None:
            same = pc.equal(pc.fill_null(batch["source"], ""), calibration.reference_source)
            return numpy(same).astype(np.int8)
        name = calibration.label_column
        column = batch[name]
        kind = column.type
        if pa.types.is_boolean(kind):
            return numpy(pc.fill_null(column.cast(pa.int8()), -1)).astype(np.int8)
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            values = numpy(pc.fill_null(column.cast(pa.float64()), np.nan)).astype(np.float64)
            labels = np.where(values > 0, 1, 0).astype(np.int8)
            labels[np.isnan(values)] = -1
            return labels
        raise TypeError(f"{self.name}: label_column {name!r} is {kind}; it must be boolean or "
                        f"numeric (true or > 0: reference, false or <= 0: contrast, null: left out)")

    def _artifact(self, reference: np.ndarray, contrast: np.ndarray) -> pa.Table:
        ref_words, con_words = reference[:, 0].sum(), contrast[:, 0].sum()
        if ref_words <= 0 or con_words <= 0:
            raise ValueError(
                f"{self.name}: calibration needs words in both sets; the reference has "
                f"{len(reference)} documents ({ref_words:.0f} words) and the contrast "
                f"{len(contrast)} ({con_words:.0f} words) of {self._counts['reference_seen']} and "
                f"{self._counts['contrast_seen']} seen. Check calibrate.reference_source or "
                f"calibrate.label_column.")
        p = reference[:, 1:].sum(axis=0) / ref_words
        q = contrast[:, 1:].sum(axis=0) / con_words
        weights = fitted_weights(p, q) * (self.config.weights.vector() > 0)
        fitted = bool(weights.sum() > 0)
        if not fitted:
            logger.warning("%s: no rule separates the reference from the contrast; keeping the "
                           "configured weights", self.name)
            weights = self.config.weights.vector()
        n = len(RULES)
        return pa.table({
            "rule": list(RULES), "weight": weights, "reference_share": p, "contrast_share": q,
            "fitted": [fitted] * n, "reference_documents": [len(reference)] * n,
            "contrast_documents": [len(contrast)] * n}, schema=ARTIFACT_SCHEMA)


def fitted_weights(reference_share: np.ndarray, contrast_share: np.ndarray) -> np.ndarray:
    """``max(0, (p - q) / (p + q))`` per rule (0 where both shares are 0)."""
    total = reference_share + contrast_share
    out = np.zeros(len(total), dtype=np.float64)
    np.divide(reference_share - contrast_share, total, out=out, where=total > 0)
    return np.maximum(out, 0.0)


@register("text_quality_score")
class TextQualityScoreComposite(Composite[TextQualityConfig]):
    """Text-quality score in [0, 1] (Sharma et al. 2024): weighted line rules; calibrate fit optional.

    Parts: ``score`` (map, configured weights) alone, or ``calibrate`` (fit) then ``score``
    (map, fitted weights) when ``calibrate`` is set.
    """

    Config = TextQualityConfig

    @classmethod
    def parts(cls, config: TextQualityConfig) -> Sequence[Part]:
        """``score`` alone, or ``calibrate`` then ``score`` with the fitted weights."""
        if config.calibrate is None:
            return (Part("score", TextQualityScore, config),)
        # the fit ignores rule_columns; the score takes its weights from the fit's artifact
        return (Part("calibrate", TextQualityCalibrate, config, ("rules", "weights", "calibrate")),
                Part("score", TextQualityScoreCalibrated, config, ("rules", "rule_columns")))
