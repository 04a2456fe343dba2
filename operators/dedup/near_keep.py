"""The last primitive of ``minhash_dedup``: verify candidates and choose one keeper per cluster.

Members of a candidate component are visited in keep-priority order (smallest id first, or
highest value of the ``max:<column>``); each is compared by exact Jaccard of its shingle
set with the documents kept so far in the component and becomes a duplicate of the first
kept document it reaches the threshold with, or is kept itself. Every removed document is
thus a verified near-copy of a kept one, so no cluster is ever removed entirely, and LSH
false positives (and chains A~B~C with A and C unlike) do not remove anything wrongly.
Cost: at most (members x kept) Jaccard computations per component, reported as metrics.
Without ``verify`` the whole component is one cluster around its keeper.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import GroupOperator, OperatorConfig, set_column
from operators.dedup import minhash_math as mm
from operators.dedup.lsh import COMPONENT
from operators.dedup.minhash import MinhashDedupConfig, shingle_sets
from operators.dedup.minhash_index import PRIOR_ID, PRIOR_MATCH, index_columns
from operators.registry import register

CLUSTER_ID = "dedup_minhash_cluster_id"
CLUSTER_SIZE = "dedup_minhash_cluster_size"
KEEP = "dedup_minhash_keep"


@register("minhash_dedup.keep")
class VerifyKeep(GroupOperator[MinhashDedupConfig]):
    """Verified near-duplicate clusters and their keepers, per candidate component.

    Reads: id, text, dedup_minhash_component (and the keep column for ``max:<column>``; the
    index match columns with ``index``). Writes: dedup_minhash_cluster_id (the keeper's id),
    dedup_minhash_cluster_size, dedup_minhash_keep. Documents outside any component bypass
    the shuffle and are their own keepers. A document matched in an earlier run's index is
    removed (its cluster id is the indexed id, null under ``bloom``; its size null) and
    never keeps this run's copies. Deterministic: the order of visits depends only on ids and the keep column.
    """

    version = 1
    Config = MinhashDedupConfig
    writes = (CLUSTER_ID, CLUSTER_SIZE, KEEP)
    bypass_null_keys = True

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics = {"verified_pairs": 0, "confirmed_pairs": 0, "verify_seconds": 0.0}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        column = config.keep_column() if isinstance(config, MinhashDedupConfig) else None
        return ("id", "text", COMPONENT) + ((column,) if column else ()) + index_columns(config)

    def group_key(self) -> tuple[str, ...]:
        return (COMPONENT,)

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        keeper = np.arange(n)  # row index of each row's keeper
        # a match in an earlier run's index is removed, and never keeps this run's copies
        prior = (pc.fill_null(table[PRIOR_MATCH], False).to_numpy(zero_copy_only=False)
                 if PRIOR_MATCH in table.column_names else np.zeros(n, dtype=bool))
        grouped = pc.is_valid(table[COMPONENT]).to_numpy(zero_copy_only=False) & ~prior
        if grouped.any():
            order = self._priority(table)
            components = table[COMPONENT].to_numpy(zero_copy_only=False)
            started = time.perf_counter()
            sets = shingle_sets(table["text"], self.config) if self.config.verify else None
            groups: dict[object, list[int]] = {}
            for row in order:  # visit rows in keep priority, bucketed by component
                if grouped[row]:
                    groups.setdefault(components[row], []).append(int(row))
            for members in groups.values():
                self._cluster(members, sets, keeper)
            if self.config.verify:
                self._metrics["verify_seconds"] += time.perf_counter() - started
        sizes = np.bincount(keeper[~prior], minlength=n)[keeper]
        cluster = table["id"].take(pa.array(keeper))
        if prior.any():
            self._metrics["index_matches"] = self._metrics.get("index_matches", 0) + int(prior.sum())
            cluster = pc.if_else(pa.array(prior), table[PRIOR_ID], cluster)
        table = set_column(table, CLUSTER_ID, cluster)
        table = set_column(table, CLUSTER_SIZE, pa.array(sizes.astype(np.int64), mask=prior))
        return set_column(table, KEEP, pa.array((keeper == np.arange(n)) & ~prior))

    def _priority(self, table: pa.Table) -> np.ndarray:
        column = self.config.keep_column()
        keys = [("id", "ascending", "at_end")]
        if column:  # highest value first; documents without one come last
            keys.insert(0, ("_priority", "descending", "at_end"))
            table = table.append_column("_priority", table[column])
        return pc.sort_indices(table, sort_keys=keys).to_numpy()

    def _cluster(self, members: list[int], sets: object, keeper: np.ndarray) -> None:
        if sets is None:  # unverified: the first in priority keeps, the rest are its copies
            keeper[members] = members[0]
            return
        kept: list[int] = []
        for row in members:
            doc = sets.doc(row)
            for k in kept:
                self._metrics["verified_pairs"] += 1
                if mm.jaccard(doc, sets.doc(k)) >= self.config.threshold:
                    self._metrics["confirmed_pairs"] += 1
                    keeper[row] = k
                    break
            else:
                kept.append(row)
