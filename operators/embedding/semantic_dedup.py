"""SemDeDup: semantic duplicates inside each k-means cluster (Abbas et al. 2023, arXiv 2303.09540).

Within a cluster, members are ranked by the keep policy (``farthest`` from the centroid first,
SemDeDup's default; ``closest`` first; or highest ``max:<column>`` first), ties by id. With
sim = the cosine similarity (dot product of the unit embeddings) and t = 1 - ``eps``:

* ``criterion: kept`` (default, as the issue states it): members are visited in rank order; a
  member is a duplicate when its similarity to some *kept* member ranked before it exceeds t
  (sim > t); otherwise it is kept. Its group is the kept member it is most similar to.
* ``criterion: ranked`` (the paper's published rule): a member is removed when its similarity
  to *any* member ranked before it exceeds t, kept or not, i.e. when prior_sim > t. A chain
  a~b~c with a and c unlike removes both b and c here, only b under ``kept``. Its group is
  the group of the earlier member it is most similar to (so, transitively, a kept member).
  Since this rule is a threshold on prior_sim, eps can be chosen from a target removal
  fraction: ``target_removal`` (semantic_target.py) fits the threshold on all documents'
  prior_sim after this stage and applies it in a map.

Similarities are computed in blocks of ``block_rows`` x ``block_rows`` over the lower triangle
of the rank-ordered cluster, so memory is O(block_rows^2 + n d), never n x n. With
``precision: float64`` each product is computed in float64 and rounded to float32, which makes
every value (and so every decision) identical to an unblocked float32-rounded all-pairs matrix:
BLAS sums in another order for another block shape, but a float64 difference (~1e-16) changes
the float32 rounding only if the exact value lies that close to a rounding boundary (odds of
about 1e-9 per pair). ``float32`` products differ by block shape in the last bit or two.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from operators.base import GroupOperator, OperatorConfig, ResourceHint, set_column
from operators.embedding.similarity_blocks import NumpyBlocks, SimilarityBlocks, similarity_blocks
from operators.embedding.vectors import CLUSTER_DISTANCE, CLUSTER_ID, EMBEDDING, embedding_matrix, int_column
from operators.runs import run_starts
from operators.registry import register

KEEP = "dedup_semantic_keep"
MAX_SIM = "dedup_semantic_max_sim"
PRIOR_SIM = "dedup_semantic_prior_sim"
PRIOR_ID = "dedup_semantic_prior_id"
GROUP = "dedup_semantic_group"


class SemanticDedupConfig(OperatorConfig):
    eps: float = Field(0.05, gt=0, lt=1, description="A member is a duplicate when its cosine similarity "
                       "exceeds 1 - eps (see criterion).")
    keep: str = Field("farthest", description="Which member of a duplicate set is kept: farthest (from the "
                      "centroid, SemDeDup's default), closest, or max:<column> (highest value first).")
    criterion: Literal["kept", "ranked"] = Field("kept", description="kept: similar to an earlier-ranked kept "
                                                 "member; ranked: to any earlier-ranked member (the paper).")
    block_rows: int = Field(2048, ge=1, description="Rows per similarity block; memory ~ block_rows^2 floats.")
    precision: Literal["float64", "float32"] = Field("float64", description="float64: products exact to "
                                                     "float32 whatever the blocking; float32: faster "
                                                     "(docs/benchmarks.md).")
    column: str = Field(EMBEDDING, description="List<float> column of L2-normalized embeddings.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the similarity blocks are computed: auto (a GPU when the worker sees "
        "one, else the CPU), cpu or cuda. The same decisions either way (similarity_blocks.py).")
    target_removal: float | None = Field(
        None, gt=0, lt=1, description="Choose eps so that about this fraction of all documents is removed "
        "(criterion ranked only; eps is then ignored): the threshold is fitted on every document's "
        "dedup_semantic_prior_sim and reported as the eps stage's metrics.")

    @model_validator(mode="after")
    def _target_needs_ranked(self) -> "SemanticDedupConfig":
        if self.target_removal is not None and self.criterion != "ranked":
            raise ValueError("target_removal needs criterion: ranked (only there is removal a threshold on "
                             "dedup_semantic_prior_sim, so a fraction picks eps)")
        return self

    @field_validator("keep")
    @classmethod
    def _keep_policy(cls, keep: str) -> str:
        if keep in ("farthest", "closest") or (keep.startswith("max:") and len(keep) > 4):
            return keep
        raise ValueError(f"keep must be farthest, closest or max:<column>, not {keep!r}")


@register("semantic_dedup.pairs")
class SemanticDedup(GroupOperator[SemanticDedupConfig]):
    """SemDeDup inside each k-means cluster, with blocked exact pairwise cosine similarity.

    Algorithm and reference: see the module docstring (Abbas et al. 2023, arXiv 2303.09540).
    Reads: id, embedding, cluster_id, and cluster_distance (farthest/closest) or the column of
    ``max:<column>``. Writes: dedup_semantic_keep (bool), dedup_semantic_max_sim (float32: the
    largest cosine similarity to any other member of the cluster, before or after it in rank;
    null in a cluster of one), dedup_semantic_prior_sim (float32: the largest similarity to a
    member ranked before it, the paper's M_i; null for the first), dedup_semantic_prior_id
    (that member's id), dedup_semantic_group (id of the kept member it duplicates; its own id
    when kept). With ``target_removal`` every row is kept here and semantic_target.py decides. No rows are dropped: a later
    filter on dedup_semantic_keep removes them. Documents without a cluster (or embedding)
    are kept. Deterministic: ranks depend on values and ids only, blocks on ranks only.
    """

    version = 2
    needs_unique_ids = True  # pairs and keepers are per id
    Config = SemanticDedupConfig
    writes = (KEEP, MAX_SIM, PRIOR_SIM, PRIOR_ID, GROUP)
    bypass_null_keys = True
    # where the cluster has GPUs, four reduce tasks share each (CPU-only clusters: CPU tasks)
    resources = ResourceHint(num_cpus=1, gpus_when_available=0.25)

    def __init__(self, config: SemanticDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics = {"clusters": 0, "documents": 0, "removed": 0, "pairs": 0, "seconds": 0.0,
                         "largest_cluster": 0, "clusters_on_gpu": 0}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, SemanticDedupConfig)
        ranking = config.keep[4:] if config.keep.startswith("max:") else CLUSTER_DISTANCE
        return ("id", config.column, CLUSTER_ID, ranking)

    def group_key(self) -> tuple[str, ...]:
        return (CLUSTER_ID,)

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def __call__(self, table: pa.Table) -> pa.Table:
        started = time.perf_counter()
        n = table.num_rows
        vectors, valid = embedding_matrix(table[self.config.column], self.config.column)
        cluster, has_cluster = int_column(table[CLUSTER_ID])
        valid &= has_cluster
        keep = np.ones(n, bool)
        max_sim = np.full(n, np.nan, np.float32)
        prior = np.full(n, np.nan, np.float32)
        keeper = np.arange(n)
        nearest = np.arange(n)
        # with a target fraction the threshold is fitted later: keep everything here
        threshold = np.inf if self.config.target_removal is not None else 1.0 - self.config.eps
        blocks = similarity_blocks(self.config.device, self.config.precision)
        order = self._rank(table)
        order = order[valid[order]]
        bounds = [*np.flatnonzero(run_starts(cluster[order])), len(order)] if len(order) else [0]
        for begin, end in zip(bounds, bounds[1:]):
            rows = order[begin:end]
            result = dedup_cluster(vectors[rows], threshold, self.config.criterion,
                                   self.config.block_rows, self.config.precision, blocks)
            keep[rows], max_sim[rows], prior[rows], keeper[rows] = result[0], result[1], result[2], rows[result[3]]
            nearest[rows] = rows[result[4]]
            self._metrics["clusters"] += 1
            self._metrics["clusters_on_gpu"] += blocks.device == "cuda"
            self._metrics["pairs"] += len(rows) * (len(rows) - 1) // 2
            self._metrics["largest_cluster"] = max(self._metrics["largest_cluster"], len(rows))
        self._metrics["documents"] += n
        self._metrics["removed"] += int((~keep).sum())
        table = set_column(table, KEEP, pa.array(keep))
        table = set_column(table, MAX_SIM, pa.array(max_sim, mask=np.isnan(max_sim)))
        table = set_column(table, PRIOR_SIM, pa.array(prior, mask=np.isnan(prior)))
        table = set_column(table, PRIOR_ID, pc.if_else(pa.array(~np.isnan(prior)), table["id"].take(pa.array(nearest)),
                                                       pa.nulls(n, table.schema.field("id").type)))
        table = set_column(table, GROUP, table["id"].take(pa.array(keeper)))
        self._metrics["seconds"] += time.perf_counter() - started
        return table

    def _rank(self, table: pa.Table) -> np.ndarray:
        """Row indices sorted by cluster, then keep priority, then id."""
        policy = self.config.keep
        column = policy[4:] if policy.startswith("max:") else CLUSTER_DISTANCE
        direction = "ascending" if policy == "closest" else "descending"
        keys = pa.table({"c": table[CLUSTER_ID], "p": table[column], "id": table["id"]})
        return pc.sort_indices(keys, sort_keys=[("c", "ascending", "at_end"), ("p", direction, "at_end"),
                                                ("id", "ascending", "at_end")]).to_numpy()


def dedup_cluster(x: np.ndarray, threshold: float, criterion: str, block: int, precision: str = "float64",
                  blocks: SimilarityBlocks | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decide one cluster whose rows ``x`` are in rank order (best to keep first).

    Returns (keep, max_sim, prior_sim, keeper, nearest) per row: max_sim over all other rows,
    prior_sim over earlier rows (NaN where there are none), keeper the row index of the kept
    row it duplicates (itself when kept), nearest the earlier row most similar (itself for
    the first). Duplicate means sim > ``threshold``. ``blocks`` computes the similarity
    blocks and their maxima (similarity_blocks.py; numpy on the CPU when not given).
    """
    n = len(x)
    blocks = blocks or NumpyBlocks(precision)
    blocks.load(x)
    max_sim = np.full(n, -np.inf, np.float32)
    prior = np.full(n, -np.inf, np.float32)
    prior_arg = np.arange(n)  # earlier row most similar (ranked criterion)
    best_kept = np.full(n, -np.inf, np.float32)  # most similar earlier kept row (kept criterion)
    best_arg = np.arange(n)
    keep = np.ones(n, bool)
    for s in range(0, n, block):
        e = min(n, s + block)
        for c in range(0, s, block):
            f = min(s, c + block)
            sims = blocks.gram(s, e, c, f)
            max_sim[c:f] = np.maximum(max_sim[c:f], blocks.col_max(sims))
            _update(prior, prior_arg, s, *blocks.row_argmax(sims), c)
            if criterion == "kept":
                _update(best_kept, best_arg, s, *blocks.row_argmax(sims, keep[c:f]), c)
        lower = blocks.lower(blocks.gram(s, e, s, e))
        max_sim[s:e] = np.maximum(max_sim[s:e], blocks.col_max(lower))
        _update(prior, prior_arg, s, *blocks.row_argmax(lower), s)
        max_sim[s:e] = np.maximum(max_sim[s:e], prior[s:e])
        if criterion == "ranked":
            keep[s:e] = prior[s:e] <= threshold
            continue
        # Rows with no earlier row of this block above the threshold are decided by earlier
        # blocks alone; the others depend on which earlier rows of the block were kept.
        pending = np.flatnonzero(blocks.rows_above(lower, threshold))
        keep[s:e] = best_kept[s:e] <= threshold
        keep[s + pending] = True
        for i, row in zip(pending, blocks.rows(lower, pending) if len(pending) else []):
            row = np.where(keep[s:s + i], row[:i], -np.inf)
            j = int(row.argmax())
            if row[j] > best_kept[s + i]:
                best_kept[s + i], best_arg[s + i] = row[j], s + j
            keep[s + i] = best_kept[s + i] <= threshold
    if criterion == "ranked":
        keeper = np.where(keep, np.arange(n), prior_arg)
        for _ in range(n):  # pointer jumping to the kept root: log2(chain) rounds
            nxt = keeper[keeper]
            if np.array_equal(nxt, keeper):
                break
            keeper = nxt
    else:
        keeper = np.where(keep, np.arange(n), best_arg)
    nan = np.float32(np.nan)
    return (keep, np.where(np.isinf(max_sim), nan, max_sim), np.where(np.isinf(prior), nan, prior), keeper,
            prior_arg)


def _update(best: np.ndarray, arg: np.ndarray, s: int, value: np.ndarray, j: np.ndarray, c: int) -> None:
    """Raise rows s.. of ``best`` to ``value`` (row maxima at columns ``j`` + c of a block), strictly."""
    if len(value) == 0:
        return
    rows = slice(s, s + len(value))
    better = value > best[rows]
    best[rows] = np.where(better, value, best[rows])
    arg[rows] = np.where(better, j + c, arg[rows])
