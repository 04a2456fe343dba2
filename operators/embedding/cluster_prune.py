"""Cluster-based pruning policies over k-means assignments; rows are marked, never lost.

``cluster_prune`` is a composite: ``cluster_prune.plan`` (a fit over id, cluster_id and
cluster_distance: 20 bytes per document on one worker) turns the policy into per-cluster
thresholds, and ``cluster_prune.apply`` (a map) marks each document against its cluster's
row of that plan. Every comparison uses the key (cluster_distance, xxh64(id)), so each
quota is met exactly and ties never depend on file order. With N documents that have a
cluster and D = round(``fraction`` x N):

* ``ssl_prototypes`` (Sorscher et al. 2022, "Beyond neural scaling laws", NeurIPS, sec. 5:
  the self-supervised prototype metric): the D documents nearest their centroid over the
  whole corpus (the "easiest" ones) are removed: ``cluster:ssl_prototypes``.
* ``scip`` (Yang et al. 2023, "Decoding data quality via synthetic corruptions:
  embedding-guided pruning of code data", arXiv 2312.02418; their finding: low-quality code
  sits in small clusters and far from centroids). Our reading: S = round(``small_share`` x D)
  removals come from the smallest clusters (ascending size, ties by cluster id) taken whole
  while they fit in S (``cluster:scip_small_cluster``); the remainder of S comes from the
  next cluster's farthest members, and the other D - S from the documents farthest from their
  centroid among all that remain (both ``cluster:scip_far``).
* ``cluster_balanced``: at most ``cap`` documents per cluster, the ones with the smallest id
  hash (a deterministic uniform sample); the rest get ``cluster:balanced_cap``. A null cap is
  the largest one that removes at least D documents (water-filling the cluster sizes).

Documents without a cluster are never pruned; their cluster_size is null.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.base import (DROP_REASON, Composite, FitOperator, MapOperator, OperatorConfig, Part, set_column,
                            with_drop_reason)
from operators.embedding.vectors import (CLUSTER_DISTANCE, CLUSTER_ID, CLUSTER_SIZE, float_column, id_hashes,
                                         int_column)
from operators.registry import register

PLAN_SCHEMA = pa.schema([("cluster_id", pa.int64()), ("size", pa.int64()), ("whole", pa.bool_()),
                         ("near_dist", pa.float64()), ("near_hash", pa.uint64()),
                         ("far_dist", pa.float64()), ("far_hash", pa.uint64()), ("cap_hash", pa.uint64())])
REASONS = {"ssl_prototypes": "cluster:ssl_prototypes", "scip_small": "cluster:scip_small_cluster",
           "scip_far": "cluster:scip_far", "cluster_balanced": "cluster:balanced_cap"}


class ClusterPruneConfig(OperatorConfig):
    policy: Literal["ssl_prototypes", "scip", "cluster_balanced"] = Field(
        "ssl_prototypes", description="ssl_prototypes: nearest their centroid; scip: smallest clusters, then "
        "farthest; cluster_balanced: a cap per cluster.")
    fraction: float = Field(0.2, ge=0, le=1, description="Share of clustered documents to remove (for "
                            "cluster_balanced only when cap is null: at least this share).")
    small_share: float = Field(0.8, ge=0, le=1, description="scip: share of the removals taken from the "
                               "smallest clusters; the rest are the farthest from their centroid.")
    cap: int | None = Field(None, ge=1, description="cluster_balanced: most documents kept per cluster "
                            "(null: derived from fraction).")


def _last_key(rows: np.ndarray, cluster: np.ndarray, d: np.ndarray, h: np.ndarray,
              ids: np.ndarray, out_d: np.ndarray, out_h: np.ndarray) -> None:
    """For each cluster, the (distance, hash) of the last of ``rows`` (in key order) in it."""
    slot = np.searchsorted(ids, cluster[rows])
    out_d[slot], out_h[slot] = d[rows], h[rows]  # later rows overwrite: the last one wins


@register("cluster_prune.plan")
class ClusterPrunePlan(FitOperator[ClusterPruneConfig]):
    """Per-cluster thresholds that realize a pruning policy exactly; see the module doc.

    Reads: id, cluster_id, cluster_distance. Writes no document column: the artifact, one row
    per cluster (size; whole: drop all; near/far (distance, hash) keys: drop at or beyond them;
    cap_hash: drop larger id hashes). Metrics: documents, planned removals, cap. Deterministic.
    """

    version = 1
    Config = ClusterPruneConfig
    reads = ("id", CLUSTER_ID, CLUSTER_DISTANCE)

    def __init__(self, config: ClusterPruneConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for batch in batches:
            cluster, valid = int_column(batch[CLUSTER_ID])
            d = float_column(batch[CLUSTER_DISTANCE])
            valid &= ~np.isnan(d)
            parts.append((cluster[valid], d[valid], id_hashes(batch["id"])[valid]))
        if not parts or not sum(len(p[0]) for p in parts):
            return PLAN_SCHEMA.empty_table()
        cluster, d, h = (np.concatenate(p) for p in zip(*parts))
        ids, sizes = np.unique(cluster, return_counts=True)
        k, n = len(ids), len(cluster)
        plan = {"whole": np.zeros(k, bool), "near_dist": np.full(k, np.nan), "near_hash": np.zeros(k, np.uint64),
                "far_dist": np.full(k, np.nan), "far_hash": np.zeros(k, np.uint64),
                "cap_hash": np.zeros(k, np.uint64)}
        has_cap = np.zeros(k, bool)
        c = self.config
        drop = round(c.fraction * n)
        order = np.lexsort((h, d))  # ascending (distance, hash)
        if c.policy == "ssl_prototypes":
            _last_key(order[:drop], cluster, d, h, ids, plan["near_dist"], plan["near_hash"])
        elif c.policy == "scip":
            small = round(c.small_share * drop)
            by_size = np.lexsort((ids, sizes))
            whole = by_size[:np.searchsorted(np.cumsum(sizes[by_size]), small, side="right")]
            plan["whole"][whole] = True
            rest = order[~plan["whole"][np.searchsorted(ids, cluster[order])]]
            far = np.zeros(0, np.int64)
            remainder = small - int(sizes[whole].sum())
            if remainder and len(whole) < k:
                nxt = ids[by_size[len(whole)]]
                far = rest[cluster[rest] == nxt][::-1][:remainder]  # farthest first
            rest = rest[~np.isin(rest, far)]
            far = np.concatenate([far, rest[::-1][:drop - small]])
            far = far[np.lexsort((h[far], d[far]))[::-1]]  # descending: each cluster's last is its nearest
            _last_key(far, cluster, d, h, ids, plan["far_dist"], plan["far_hash"])
        else:
            cap = c.cap if c.cap is not None else _water_fill(sizes, n - drop)
            self._metrics["cap"] = cap
            by_hash = np.lexsort((h, cluster))
            first = np.searchsorted(cluster[by_hash], ids)
            over = sizes > cap
            plan["cap_hash"][over] = h[by_hash[first[over] + cap - 1]]
            has_cap = over
        table = pa.table({"cluster_id": pa.array(ids, pa.int64()), "size": pa.array(sizes, pa.int64()),
                          "whole": pa.array(plan["whole"]),
                          "near_dist": pa.array(plan["near_dist"], mask=np.isnan(plan["near_dist"])),
                          "near_hash": pa.array(plan["near_hash"], mask=np.isnan(plan["near_dist"])),
                          "far_dist": pa.array(plan["far_dist"], mask=np.isnan(plan["far_dist"])),
                          "far_hash": pa.array(plan["far_hash"], mask=np.isnan(plan["far_dist"])),
                          "cap_hash": pa.array(plan["cap_hash"], mask=~has_cap)}, schema=PLAN_SCHEMA)
        self._metrics.update({"documents": n, "clusters": k})
        return table


def _water_fill(sizes: np.ndarray, budget: int) -> int:
    """The largest cap with sum(min(size, cap)) <= budget, at least 1."""
    lo, hi = 1, int(sizes.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if int(np.minimum(sizes, mid).sum()) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _at_or_before(d: np.ndarray, h: np.ndarray, td: np.ndarray, th: np.ndarray) -> np.ndarray:
    """(d, h) <= (td, th) lexicographically; False where td is NaN."""
    return (d < td) | ((d == td) & (h <= th))


@register("cluster_prune.apply")
class ClusterPruneApply(MapOperator[ClusterPruneConfig]):
    """Marks the documents a cluster_prune plan removes, and writes each one's cluster size.

    Reads: id, cluster_id, cluster_distance. Writes: cluster_size (int64; null without a
    cluster), drop_reason (cluster:ssl_prototypes, cluster:scip_small_cluster,
    cluster:scip_far or cluster:balanced_cap; an earlier reason is kept). Deterministic per row.
    """

    version = 1
    Config = ClusterPruneConfig
    uses_artifact = True
    keeps_rows = True
    reads = ("id", CLUSTER_ID, CLUSTER_DISTANCE)
    writes = (CLUSTER_SIZE, DROP_REASON)

    def __init__(self, config: ClusterPruneConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        plan = (artifact if artifact is not None else PLAN_SCHEMA.empty_table()).sort_by("cluster_id")
        self.plan = {name: plan[name].combine_chunks() for name in PLAN_SCHEMA.names}
        self.ids = self.plan["cluster_id"].to_numpy(zero_copy_only=False)
        self._metrics: dict[str, float] = {}

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def _column(self, name: str, slot: np.ndarray, fill: float) -> np.ndarray:
        values = self.plan[name].fill_null(fill).to_numpy(zero_copy_only=False)
        return values[slot]

    def __call__(self, batch: pa.Table) -> pa.Table:
        cluster, valid = int_column(batch[CLUSTER_ID])
        slot = np.minimum(np.searchsorted(self.ids, cluster), max(len(self.ids) - 1, 0))
        valid &= (self.ids[slot] == cluster) if len(self.ids) else False
        size = np.zeros(batch.num_rows, np.int64)
        reasons = np.full(batch.num_rows, None, object)
        if valid.any():
            slot, d = slot[valid], float_column(batch[CLUSTER_DISTANCE])[valid]
            h = id_hashes(batch["id"])[valid]
            size[valid] = self._column("size", slot, 0)
            why = np.full(len(slot), None, object)
            near = _at_or_before(d, h, self._column("near_dist", slot, np.nan), self._column("near_hash", slot, 0))
            fd, fh = self._column("far_dist", slot, np.nan), self._column("far_hash", slot, 0)
            far = (d > fd) | ((d == fd) & (h >= fh))
            capped = self.plan["cap_hash"].is_valid().to_numpy(zero_copy_only=False)[slot] & (
                h > self._column("cap_hash", slot, 0))
            why[near] = REASONS["ssl_prototypes"]
            why[far] = REASONS["scip_far"]
            why[capped] = REASONS["cluster_balanced"]
            why[self._column("whole", slot, False)] = REASONS["scip_small"]
            reasons[valid] = why
            for reason in set(why[why != None]):  # noqa: E711 - elementwise None test
                self._metrics[reason] = self._metrics.get(reason, 0) + int((why == reason).sum())
        batch = set_column(batch, CLUSTER_SIZE, pa.array(size, mask=~valid))
        return with_drop_reason(batch, pa.array(reasons, pa.string()))


@register("cluster_prune")
class ClusterPrune(Composite[ClusterPruneConfig]):
    """Pruning by k-means clusters (ssl_prototypes, scip, cluster_balanced): a plan fit, then a marking map."""

    Config = ClusterPruneConfig

    @classmethod
    def parts(cls, config: ClusterPruneConfig) -> Sequence[Part]:
        # apply reads the policy as the plan's per-cluster thresholds, nothing of the config
        return (Part("plan", ClusterPrunePlan, config), Part("apply", ClusterPruneApply, config, ()))
