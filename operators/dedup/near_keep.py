"""The last primitives of ``minhash_dedup``: verify candidates, choose one keeper per
cluster (``keep``, a group stage over the candidates alone), and mark every document
(``apply``, a map).

Members of a candidate component are visited in keep-priority order (smallest id first, or
highest value of the ``max:<column>``). Each is compared by exact Jaccard of its shingle set
with the documents kept so far that it is *linked* to: those sharing one of its LSH band
buckets (``dedup_minhash_bands``), in the order they were kept. It becomes a duplicate of the
first one it reaches the threshold with. If it reaches none, it is checked the same way
against the linked documents already removed within ``max_hops - 1`` links of their keeper
(default ``max_hops`` 2: those removed as a keeper's direct copy), and joins the cluster of
the first it matches: chains A~B~C lose C. Otherwise it is kept. Every removed document thus
has a verified chain of at most ``max_hops`` links (each at the threshold) to its kept
keeper, so no cluster is ever removed entirely, LSH false positives remove nothing, and as
Jaccard distance is a metric (Levandowsky and Winter 1971) its Jaccard with the keeper is
at least ``1 - max_hops * (1 - threshold)`` (0.6 for two links at 0.8; with ``max_hops: 1``
the threshold itself: a verified kept partner). A document similar to a kept one with which
it shares no bucket (the LSH miss rate at that similarity, ``1 - candidate_probability``)
is kept: the same recall LSH gives any pair.

Cost: the exact checks are bounded by the linked kept documents, not by the component (a
component of n members with k keepers once cost up to n x k checks; a boilerplate component
of a web crawl has hundreds of thousands of members). Before each exact check the 8-bit
MinHash sketches (``dedup_minhash_sketch``, b-bit minwise hashing, Li and Koenig 2010) give
an estimate; a pair estimated below ``threshold - margin`` is skipped, where the margin is
set by Hoeffding's bound so that a pair truly at the threshold is skipped with probability at
most 1e-6 (:func:`prefilter_margin`). Checks, skips and confirmations are metrics. Without
``verify`` the whole component is one cluster around its keeper.

Only candidates are shuffled; ``keep`` emits their marks as an artifact split per document
file, and ``apply`` joins each file with its slices, marking every other document as its
own keeper. The documents outside any component (about 90% of a web crawl) are thus
never rewritten: ``apply`` stores three columns (a column file). When ``keep`` wrote the
whole documents, their rewrite was most of its time (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import FILE_COLUMN, GroupOperator, MapOperator, OperatorConfig, set_column
from operators.dedup.minhash_config import BANDS, COMPONENT, SKETCH, MinhashDedupConfig, fixed_list_values, shingle_sets
from operators.dedup.minhash_index import PRIOR_ID, PRIOR_MATCH, index_columns
from operators.dedup.verify_kernel import first_verified
from operators.hashing import distinct_values
from operators.registry import register

SKIP_PROBABILITY = 1e-6
"""Bound on the probability that the sketch pre-filter skips a pair truly at the threshold."""

CLUSTER_ID = "dedup_minhash_cluster_id"
CLUSTER_SIZE = "dedup_minhash_cluster_size"
KEEP = "dedup_minhash_keep"


@register("minhash_dedup.keep")
class VerifyKeep(GroupOperator[MinhashDedupConfig]):
    """Verified near-duplicate clusters and their keepers, per candidate component.

    Reads: id, text, dedup_minhash_component, and with ``verify`` dedup_minhash_bands and
    dedup_minhash_sketch (and the keep column for ``max:<column>``; the index match columns
    with ``index``). Writes no document column: emits, for the
    candidates only (documents outside any component are not shuffled), the artifact id,
    file, dedup_minhash_cluster_id (the keeper's id), dedup_minhash_cluster_size,
    dedup_minhash_keep, split per document file; :class:`KeepApply` marks the documents. A document matched in an earlier run's index is
    removed (its cluster id is the indexed id, null under ``bloom``; its size null) and
    never keeps this run's copies. Deterministic: the order of visits depends only on ids and the keep column.
    """

    version = 3  # 2: emits the candidates' marks as an artifact; 3: checks linked keepers only, sketch pre-filter
    Config = MinhashDedupConfig
    emits = "artifact"
    artifact_by_file = True
    bypass_null_keys = True

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics = {"verified_pairs": 0, "confirmed_pairs": 0, "prefiltered_pairs": 0, "verify_seconds": 0.0}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        column = config.keep_column() if isinstance(config, MinhashDedupConfig) else None
        links = (BANDS, SKETCH) if isinstance(config, MinhashDedupConfig) and config.verify else ()
        return ("id", "text", COMPONENT, *links) + ((column,) if column else ()) + index_columns(config)

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
            sets = _RowSets(table, self.config) if self.config.verify else None
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

    def _cluster(self, members: list[int], sets: "_RowSets | None", keeper: np.ndarray) -> None:
        if sets is None:  # unverified: the first in priority keeps, the rest are its copies
            keeper[members] = members[0]
            return
        max_hops = self.config.max_hops or len(members)  # null: any chain
        kept_in: dict[tuple[int, int], list[int]] = {}  # (band, bucket hash) -> kept rows, in kept order
        via_in: dict[tuple[int, int], list[int]] = {}  # the same for removed rows a chain may pass through
        rank: dict[int, int] = {}  # row -> its place in visit order
        hops: dict[int, int] = {}  # removed row -> verified links from it to its keeper
        for row in members:
            rank[row] = len(rank)
            buckets = sets.buckets(row)
            linked = sorted({k for b in buckets for k in kept_in.get(b, ())}, key=rank.__getitem__)
            match = self._first_verified(row, linked, sets) if linked else None
            if match is not None:
                hops[row] = 1
            elif max_hops > 1:
                # a chain A~B~C: B was removed as A's copy, C is like B but not like A
                removed = sorted({r for b in buckets for r in via_in.get(b, ())}, key=rank.__getitem__)
                via = self._first_verified(row, removed, sets) if removed else None
                if via is not None:
                    match, hops[row] = int(keeper[via]), hops[via] + 1
                    self._metrics["chain_matches"] = self._metrics.get("chain_matches", 0) + 1
            if match is None:
                into = kept_in
            else:
                keeper[row] = match
                if hops[row] >= max_hops:  # no chain may pass through it
                    continue
                into = via_in
            for b in buckets:
                into.setdefault(b, []).append(row)

    def _first_verified(self, row: int, linked: list[int], sets: "_RowSets") -> int | None:
        """The first of the rows ``linked`` whose exact Jaccard with ``row`` reaches the
        threshold, skipping those whose sketch estimate is below ``sets.least``."""
        at, checked, skipped = first_verified(sets.sets.values, sets.sets.offsets, sets.index, sets.sketch, row,
                                              np.asarray(linked, dtype=np.int64), sets.least, self.config.threshold)
        self._metrics["verified_pairs"] += checked
        self._metrics["prefiltered_pairs"] += skipped
        if at < 0:
            return None
        self._metrics["confirmed_pairs"] += 1
        return linked[at]


def prefilter_margin(num_perm: int, skip_probability: float = SKIP_PROBABILITY) -> float:
    """How far below the threshold a sketch estimate may fall before its pair is skipped.

    A pair of Jaccard ``s`` has equal 8-bit sketch values at each of ``num_perm`` positions
    with probability ``p = s + (1 - s) / 256``, and the estimate is
    ``(m / num_perm - 1/256) / (1 - 1/256)``. Hoeffding: the share ``m / num_perm`` falls
    ``d`` below ``p`` with probability at most ``exp(-2 num_perm d^2)``, so for
    ``d = sqrt(ln(1 / skip_probability) / (2 num_perm))`` the estimate of a pair at the
    threshold falls below ``threshold - d / (1 - 1/256)`` with probability at most
    ``skip_probability`` (0.249 for 112 permutations, 0.328 for 64).
    """
    return math.sqrt(math.log(1 / skip_probability) / (2 * num_perm)) / (1 - 1 / 256)


class _RowSets:
    """Per row of a keep batch: its shingle set (each distinct text shingled once: exact
    copies are common among candidates, 46% of them in the 1M-document benchmark, which has
    no exact dedup stage before, and shingling is most of the keep step's time), its band
    buckets and its sketch; and the lowest sketch estimate the pre-filter lets through."""

    def __init__(self, table: pa.Table, config: MinhashDedupConfig) -> None:
        dictionary, self.index = distinct_values(table["text"], nulls=True)
        self.sets = shingle_sets(dictionary, config)
        # widths from the columns' types: what the signature step wrote is what counts
        self.bands, _ = fixed_list_values(table[BANDS], table.schema.field(BANDS).type.list_size)
        sketch, _ = fixed_list_values(table[SKETCH], table.schema.field(SKETCH).type.list_size)
        self.sketch = sketch.astype(np.uint8)
        self.least = config.threshold - prefilter_margin(sketch.shape[1])  # lowest estimate checked exactly

    def doc(self, row: int) -> np.ndarray:
        return self.sets.doc(int(self.index[row]))

    def buckets(self, row: int) -> list[tuple[int, int]]:
        """The row's LSH buckets: (band, the band's hash)."""
        return list(enumerate(self.bands[row].tolist()))


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
