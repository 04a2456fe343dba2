"""semantic_dedup as users write it, and eps chosen from a target removal fraction.

``semantic_dedup`` is a composite. Without ``target_removal`` it is the one group stage of
semantic_dedup.py (named ``semantic_dedup``), deciding with the configured ``eps``. With it
(criterion ``ranked``, where a document is removed exactly when its
``dedup_semantic_prior_sim`` exceeds 1 - eps):

1. ``semantic_dedup`` (group): similarities only, every document kept;
2. ``semantic_dedup.eps`` (fit): a histogram of every document's prior_sim in bins of
   1e-6, then the smallest threshold t (a bin edge) with count(prior_sim > t) <= round(f N):
   removal is at most the target and short of it only by the documents tied in t's bin.
   eps = 1 - t, the target, the planned removal and N are the stage's metrics (run.json, the
   manifest's funnel);
3. ``semantic_dedup.apply`` (map): dedup_semantic_keep = prior_sim is null or <= t;
   dedup_semantic_group = the document's own id when kept, else dedup_semantic_prior_id (the
   most similar earlier-ranked member, which may itself be removed at t: follow the group
   column until a kept row to reach the representative).

SemDeDup (Abbas et al. 2023) picks eps per dataset by the fraction it removes; this fits it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import Composite, FitOperator, MapOperator, OperatorConfig, Part, set_column
from operators.embedding.semantic_dedup import (GROUP, KEEP, PRIOR_ID, PRIOR_SIM, SemanticDedup,
                                                SemanticDedupConfig)
from operators.registry import register

BIN = 1e-6
"""Histogram bin width in cosine similarity: the fitted threshold's resolution."""
_BINS = int(round(2 / BIN)) + 1
ARTIFACT_SCHEMA = pa.schema([("threshold", pa.float64()), ("eps", pa.float64()), ("target_removal", pa.float64()),
                             ("documents", pa.int64()), ("planned_removed", pa.int64())])


def _bins(values: np.ndarray) -> np.ndarray:
    """Bin k holds similarities in ((k - 1) * BIN - 1, k * BIN - 1]: its upper edge is a threshold."""
    return np.clip(np.ceil((values.astype(np.float64) + 1.0) / BIN), 0, _BINS - 1).astype(np.int64)


def threshold_for(counts: np.ndarray, documents: int, target: float) -> tuple[float, int]:
    """Smallest bin edge t with at most round(target * documents) values above it, and that count."""
    allowed = int(round(target * documents))
    above = np.concatenate([np.cumsum(counts[::-1])[::-1][1:], [0]])  # values in bins after k
    k = int(np.argmax(above <= allowed))  # above is non-increasing: the first k that fits
    return k * BIN - 1.0, int(above[k])


@register("semantic_dedup.eps")
class SemanticDedupEps(FitOperator[SemanticDedupConfig]):
    """The threshold on dedup_semantic_prior_sim that removes ``target_removal`` of all documents.

    Algorithm: one pass, a 2,000,001-bin histogram (16 MB) of prior_sim; the smallest bin edge
    t leaving at most round(target x N) values above it (see the module docstring).
    Reads: dedup_semantic_prior_sim. Writes no document column: the artifact (threshold,
    eps = 1 - threshold, target_removal, documents, planned_removed), also its metrics.
    """

    version = 1
    Config = SemanticDedupConfig

    def __init__(self, config: SemanticDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        return (PRIOR_SIM,)

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        counts = np.zeros(_BINS, dtype=np.int64)
        documents = 0
        for batch in batches:
            documents += batch.num_rows
            values = pc.drop_null(batch[PRIOR_SIM]).to_numpy()
            counts += np.bincount(_bins(values[~np.isnan(values)]), minlength=_BINS)
        target = float(self.config.target_removal or 0.0)
        threshold, removed = threshold_for(counts, documents, target)
        row = {"threshold": threshold, "eps": 1.0 - threshold, "target_removal": target,
               "documents": documents, "planned_removed": removed}
        self._metrics = {"semantic_eps": round(1.0 - threshold, 6), "semantic_threshold": round(threshold, 6),
                         "semantic_target_removal": target, "semantic_planned_removed": float(removed),
                         "semantic_documents": float(documents)}
        return pa.Table.from_pylist([row], schema=ARTIFACT_SCHEMA)


@register("semantic_dedup.apply")
class SemanticDedupApply(MapOperator[SemanticDedupConfig]):
    """Keep or remove each document at the fitted threshold t (semantic_dedup.eps's artifact).

    Reads: id, dedup_semantic_prior_sim, dedup_semantic_prior_id. Writes: dedup_semantic_keep
    (prior_sim null or <= t), dedup_semantic_group (own id when kept, else prior_id). Drops
    nothing (a filter on dedup_semantic_keep does). Deterministic given the artifact.
    """

    keeps_rows = True
    version = 1
    Config = SemanticDedupConfig
    uses_artifact = True
    writes = (KEEP, GROUP)

    def __init__(self, config: SemanticDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        if artifact is None or artifact.num_rows != 1:
            raise ValueError("semantic_dedup.apply needs the one-row artifact of semantic_dedup.eps")
        self.threshold = float(artifact["threshold"][0].as_py())
        self._removed = 0

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        return ("id", PRIOR_SIM, PRIOR_ID)

    def metrics(self) -> dict[str, float]:
        return {"removed": float(self._removed)}

    def __call__(self, batch: pa.Table) -> pa.Table:
        prior = pc.fill_null(batch[PRIOR_SIM].cast(pa.float64()), -2.0).to_numpy(zero_copy_only=False)
        keep = ~(prior > self.threshold)  # NaN compares false: kept, like a null
        self._removed += int((~keep).sum())
        group = pc.if_else(pa.array(keep), batch["id"], batch[PRIOR_ID].cast(batch.schema.field("id").type))
        return set_column(set_column(batch, KEEP, pa.array(keep)), GROUP, group)


@register("semantic_dedup")
class SemanticDedupComposite(Composite[SemanticDedupConfig]):
    """SemDeDup inside k-means clusters; with target_removal, eps is fitted to remove that fraction.

    One group stage (semantic_dedup.py), or with ``target_removal`` the group stage, an eps
    fit and an apply map (this module's docstring).
    """

    Config = SemanticDedupConfig

    @classmethod
    def parts(cls, config: SemanticDedupConfig) -> Sequence[Part]:
        if config.target_removal is None:
            # every field but device, which changes where, not what (same decisions)
            return (Part("", SemanticDedup, config, tuple(f for f in SemanticDedupConfig.model_fields
                                                          if f != "device")),)
        # with a target the pairs stage decides nothing (eps is ignored, every row kept), so a
        # new target reruns only the eps fit and apply, never the pairwise similarities
        pairs = Part("", SemanticDedup, config, ("keep", "criterion", "block_rows", "precision", "column"))
        return (pairs, Part("eps", SemanticDedupEps, config, ("target_removal",)),
                Part("apply", SemanticDedupApply, config, ()))
