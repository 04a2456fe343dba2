"""Fitting the linear model ``classifier_score`` scores with, from examples in memory.

scikit-learn's L2-regularized logistic regression (or ridge regression on 0/1 targets) over
hashed word n-grams (:mod:`operators.quality.classifier_model`) or embeddings, fitted on all
but a stratified validation split drawn from a seed; the report gives held-out AUC and
accuracy. Deterministic for the same examples, arguments and library versions: lbfgs and
the ridge solver involve no randomness. `tamis train-classifier` (jobs/train.py) reads the
examples and writes the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from operators.quality.classifier_model import ClassifierModel, NgramFeatures, ngram_features

FEATURE_BATCH = 1024
Embed = Callable[[list[str]], np.ndarray]
"""Texts -> L2-normalized embeddings, one row each."""


class TrainingError(ValueError):
    """Examples that cannot train a model (missing, too few, wrong columns); says which."""


@dataclass(frozen=True)
class Examples:
    """Texts or embeddings of one class, with where they came from."""

    texts: list[str]
    embeddings: np.ndarray | None  # (n, d) when every file carried an ``embedding`` column
    files: list[str]

    def __len__(self) -> int:
        return len(self.texts) if self.embeddings is None else len(self.embeddings)


class TrainingArgs(Protocol):
    """The settings :func:`train` reads (the CLI's parsed arguments have them)."""

    kind: str
    loss: str
    c: float
    buckets: int
    max_ngram: int
    validation_fraction: float
    seed: int
    max_iter: int
    embedding_model: str


def validation_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of held-out rows: ``fraction`` of each class (at least one), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(labels), dtype=bool)
    for value in (0, 1):
        rows = np.flatnonzero(labels == value)
        take = max(1, int(round(fraction * len(rows))))
        held[rng.permutation(rows)[:take]] = True
    return held


def features(examples: Examples, kind: str, ngram: NgramFeatures | None, embed: Embed) -> Any:
    """The design matrix of ``examples``: sparse hashed n-grams, or dense embeddings."""
    if kind == "embedding":
        return examples.embeddings if examples.embeddings is not None else embed(examples.texts)
    from scipy import sparse

    blocks = []
    for start in range(0, len(examples.texts), FEATURE_BATCH):
        rows = ngram_features(pa.array(examples.texts[start:start + FEATURE_BATCH], pa.string()), ngram)
        blocks.append(sparse.csr_matrix((rows.values, (rows.rows, rows.columns)),
                                        shape=(rows.num_rows, ngram.buckets)))
    return sparse.vstack(blocks, format="csr")


def train(positive: Examples, negative: Examples, args: TrainingArgs, embed: Embed) -> tuple[ClassifierModel, dict[str, Any]]:
    """Fit on all but the validation split; the model and what it scored on the held-out rows.

    ``embed`` embeds texts for ``kind == "embedding"`` when the examples carry no embeddings
    (the caller loads the model: operators never touch the environment)."""
    import sklearn
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import roc_auc_score

    if len(positive) < 2 or len(negative) < 2:
        raise TrainingError(f"need at least 2 positive and 2 negative examples, "
                            f"got {len(positive)} and {len(negative)}")
    ngram = NgramFeatures(args.buckets, args.max_ngram) if args.kind == "ngram" else None
    x_pos, x_neg = features(positive, args.kind, ngram, embed), features(negative, args.kind, ngram, embed)
    if args.kind == "embedding" and x_pos.shape[1] != x_neg.shape[1]:
        raise TrainingError(f"positive embeddings have {x_pos.shape[1]} values, negative {x_neg.shape[1]}")
    if args.kind == "ngram":
        from scipy import sparse

        x = sparse.vstack([x_pos, x_neg], format="csr")
    else:
        x = np.vstack([x_pos, x_neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    held = validation_split(y, args.validation_fraction, args.seed)
    fit_x = x[~held]
    # Only buckets some training document has can get a non-zero weight (L2 keeps the rest at
    # 0): fit on those columns alone, a few percent of 2^20, and put the weights back after.
    used = np.unique(fit_x.indices) if args.kind == "ngram" else np.arange(x.shape[1])
    fit_x = fit_x[:, used] if args.kind == "ngram" else fit_x
    if args.loss == "logistic":
        fitted = LogisticRegression(C=args.c, max_iter=args.max_iter, solver="lbfgs").fit(fit_x, y[~held])
        coef, bias, link = fitted.coef_[0], float(fitted.intercept_[0]), "logistic"
    else:
        fitted = Ridge(alpha=1.0 / args.c).fit(fit_x, y[~held])
        coef, bias, link = fitted.coef_, float(fitted.intercept_), "identity"
    weights = np.zeros(x.shape[1])
    weights[used] = coef
    model = ClassifierModel.from_dense(
        args.kind, link, bias, weights, ngram=ngram,
        dimensions=None if ngram else int(x.shape[1]), training={})
    scores = score_matrix(model, x)
    validation = {"examples": int(held.sum()), "positive": int(y[held].sum()), "fraction": args.validation_fraction,
                  "auc": float(roc_auc_score(y[held], scores[held])),
                  "accuracy": float(np.mean((scores[held] >= 0.5) == (y[held] == 1)))}
    report = {"trainer": f"scikit-learn {sklearn.__version__} "
                         f"{'LogisticRegression(lbfgs)' if link == 'logistic' else 'Ridge'}",
              "c": args.c, "seed": args.seed, "positive_files": positive.files, "negative_files": negative.files,
              "examples": {"positive": len(positive), "negative": len(negative)}, "validation": validation,
              "train_auc": float(roc_auc_score(y[~held], scores[~held]))}
    if args.kind == "embedding" and positive.embeddings is None:
        report["embedding_model"] = args.embedding_model
    return ClassifierModel(model.kind, model.link, model.bias, model.index, model.weight, ngram=model.ngram,
                           dimensions=model.dimensions, training=report), report


def score_matrix(model: ClassifierModel, x: Any) -> np.ndarray:
    """Scores of the rows of a design matrix with the stored (float32) weights, as the operator scores."""
    return model.apply_link(np.asarray(x @ model.dense_weights()).ravel() + model.bias)
