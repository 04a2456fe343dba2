"""The last primitives of ``minhash_dedup``: verify candidates, choose one keeper per
cluster (``keep``, a group stage over the candidates alone), and mark every document
(``apply``, a map).

Members of a candidate component are visited in keep-priority order (smallest id first, or
highest value of the ``max:<column>``); each is compared by exact Jaccard of its shingle
set with the documents kept so far in the component and becomes a duplicate of the first
kept document it reaches the threshold with, or is kept itself. Every removed document is
thus a verified near-copy of a kept one, so no cluster is ever removed entirely, and LSH
false positives (and chains A~B~C with A and C unlike) do not remove anything wrongly.
Cost: at most (members x kept) Jaccard computations per component, reported as metrics.
Without ``verify`` the whole component is one cluster around its keeper.

Only candidates are shuffled; ``keep`` emits their marks as an artifact split per document
file, and ``apply`` joins each file with its slices, marking every other document as its
own keeper. The documents outside any component (about 90% of a web crawl) are thus
never rewritten: ``apply`` stores three columns (a column file). When ``keep`` wrote the
whole documents, their rewrite was most of its time (docs/benchmarks.md).
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import FILE_COLUMN, GroupOperator, MapOperator, OperatorConfig, set_column
from operators.dedup import minhash_math as mm
from operators.dedup.minhash_config import COMPONENT, MinhashDedupConfig, shingle_sets
from operators.dedup.minhash_index import PRIOR_ID, PRIOR_MATCH, index_columns
from operators.hashing import distinct_values
from operators.registry import register

CLUSTER_ID = "dedup_minhash_cluster_id"
CLUSTER_SIZE = "dedup_minhash_cluster_size"
KEEP = "dedup_minhash_keep"


@register("minhash_dedup.keep")
class VerifyKeep(GroupOperator[MinhashDedupConfig]):
    """Verified near-duplicate clusters and their keepers, per candidate component.

    Reads: id, text, dedup_minhash_component (and the keep column for ``max:<column>``; the
    index match columns with ``index``). Writes no document column: emits, for the
    candidates only (documents outside any component are not shuffled), the artifact id,
    file, dedup_minhash_cluster_id (the keeper's id), dedup_minhash_cluster_size,
    dedup_minhash_keep, split per document file; :class:`KeepApply` marks the documents. A document matched in an earlier run's index is
    removed (its cluster id is the indexed id, null under ``bloom``; its size null) and
    never keeps this run's copies. Deterministic: the order of visits depends only on ids and the keep column.
    """

    version = 2  # 2: emits the candidates' marks as an artifact; KeepApply writes the columns
    Config = MinhashDedupConfig
    emits = "artifact"
    artifact_by_file = True
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
            sets = _RowSets(table["text"], self.config) if self.config.verify else None
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
        marks = {"id": table["id"], CLUSTER_ID: cluster, CLUSTER_SIZE: pa.array(sizes.astype(np.int64), mask=prior),
                 KEEP: pa.array((keeper == np.arange(n)) & ~prior)}
        # the shuffle tags every row with its document file; the artifact is split by it
        return pa.table({FILE_COLUMN: table[FILE_COLUMN], **marks} if FILE_COLUMN in table.column_names else marks)

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


class _RowSets:
    """Shingle sets of a batch's rows, each distinct text shingled once: exact copies are
    common among candidates (46% of them in the 1M-document benchmark, which has no exact
    dedup stage before), and shingling is most of the keep step's time."""

    def __init__(self, text: pa.ChunkedArray, config: MinhashDedupConfig) -> None:
        dictionary, self.index = distinct_values(text, nulls=True)
        self.sets = shingle_sets(dictionary, config)

    def doc(self, row: int) -> np.ndarray:
        return self.sets.doc(int(self.index[row]))


@register("minhash_dedup.apply")
class KeepApply(MapOperator[MinhashDedupConfig]):
    """Every document's cluster and keep mark, from its file's slices of the keep artifact.

    A candidate's marks are looked up by id; any other document is its own keeper.

    Reads: id (and the index match columns with ``index``). Writes: dedup_minhash_cluster_id,
    dedup_minhash_cluster_size, dedup_minhash_keep. A document outside any component but
    matched in an earlier run's index is removed, as :class:`VerifyKeep` removes such a
    candidate (cluster id the indexed id, size null). Deterministic.
    """

    keeps_rows = True
    version = 1
    Config = MinhashDedupConfig
    reads = ("id",)
    writes = (CLUSTER_ID, CLUSTER_SIZE, KEEP)
    uses_artifact = True

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        return ("id",) + index_columns(config)

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        prior = (pc.fill_null(batch[PRIOR_MATCH], False).combine_chunks()
                 if PRIOR_MATCH in batch.column_names else pa.array(np.zeros(n, dtype=bool)))
        cluster = pc.if_else(prior, batch[PRIOR_ID], batch["id"]) if PRIOR_MATCH in batch.column_names \
            else batch["id"]
        size = pa.array(np.ones(n, dtype=np.int64), mask=prior.to_numpy(zero_copy_only=False))
        keep = pc.invert(prior)
        if self.artifact is not None and self.artifact.num_rows:
            index = pc.index_in(batch["id"], value_set=self.artifact["id"])
            found = pc.is_valid(index)
            cluster = pc.if_else(found, self.artifact[CLUSTER_ID].take(index), cluster)
            size = pc.if_else(found, self.artifact[CLUSTER_SIZE].take(index), size)
            keep = pc.if_else(found, self.artifact[KEEP].take(index), keep)
        batch = set_column(batch, CLUSTER_ID, cluster)
        batch = set_column(batch, CLUSTER_SIZE, size)
        return set_column(batch, KEEP, keep)
