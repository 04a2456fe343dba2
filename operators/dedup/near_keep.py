"""The last primitives of ``minhash_dedup``: verify candidates, choose one keeper per
cluster (``keep``, a group stage over the candidates alone), and mark every document
(``apply``, a map).

Members of a candidate component are visited in keep-priority order (smallest id first, or
highest value of the ``max:<column>``). Each is compared by exact Jaccard of its shingle set
(32-bit shingle hashes: :func:`~operators.dedup.minhash_config.verification_sets`)
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

The shingle sets are made on the shuffle's map side (:meth:`VerifyKeep.project`, one task
per document file, on every core) and travel in place of the text: the group step of a
component of 100,000 near-copies once spent two thirds of its single-core time shingling
(docs/benchmarks.md).

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
from operators.dedup.minhash_config import (BANDS, COMPONENT, SKETCH, MinhashDedupConfig, fixed_list_values,
                                            verification_sets)
from operators.dedup.minhash_index import PRIOR_ID, PRIOR_MATCH, index_columns
from operators.dedup.shingling import ShingleSets
from operators.dedup.verify_kernel import greedy_clusters
from operators.hashing import distinct_values
from operators.registry import register

SKIP_PROBABILITY = 1e-6
"""Bound on the probability that the sketch pre-filter skips a pair truly at the threshold."""

SETS = "_tamis_minhash_shingles"
"""Column of keep's shuffle only: each candidate's sorted shingle set (``large_list<uint32>``,
:func:`~operators.dedup.minhash_config.verification_sets`),
null for the other rows; :meth:`VerifyKeep.project` makes it and drops the text."""

CLUSTER_ID = "dedup_minhash_cluster_id"
CLUSTER_SIZE = "dedup_minhash_cluster_size"
KEEP = "dedup_minhash_keep"


@register("minhash_dedup.keep")
class VerifyKeep(GroupOperator[MinhashDedupConfig]):
    """Verified near-duplicate clusters and their keepers, per candidate component.

    Reads: id, text, dedup_minhash_component, and with ``verify`` dedup_minhash_bands and
    dedup_minhash_sketch (and the keep column for ``max:<column>``; the index match columns
    with ``index``); the shuffle moves each candidate's shingle set, not its text
    (:meth:`project`). Writes no document column: emits, for the
    candidates only (documents outside any component are not shuffled), the artifact id,
    file, dedup_minhash_cluster_id (the keeper's id), dedup_minhash_cluster_size,
    dedup_minhash_keep, split per document file; :class:`KeepApply` marks the documents. A document matched in an earlier run's index is
    removed (its cluster id is the indexed id, null under ``bloom``; its size null) and
    never keeps this run's copies. Deterministic: the order of visits depends only on ids and the keep column.
    """

    # 2: emits the candidates' marks as an artifact; 3: checks linked keepers only, sketch
    # pre-filter; 4: 32-bit shingle hashes (shingling.narrowed)
    version = 4
    Config = MinhashDedupConfig
    emits = "artifact"
    artifact_by_file = True
    bypass_null_keys = True
    rows_sorted = False  # visits rows in its own priority order; sorting moved every shingle set

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

    def project(self, batch: pa.Table) -> pa.Table:
        """The batch with each candidate's shingle set (:data:`SETS`) in place of its text.

        Runs where the documents are read, so the shingling is spread over every task, not
        left to the one that receives a large component. Rows outside any component, or
        matched in an earlier run's index, are never verified: their set is null. Without
        ``verify`` the text is only dropped."""
        if not self.config.verify:
            return batch.drop_columns(["text"])
        shingled = pc.is_valid(batch[COMPONENT]).to_numpy(zero_copy_only=False) & ~_prior(batch)
        rows = np.flatnonzero(shingled)
        if len(rows):
            # exact copies are common among candidates: each distinct text is shingled once
            dictionary, distinct = distinct_values(batch["text"].take(pa.array(rows)), nulls=True)
            sets = verification_sets(dictionary, self.config)
            lists = pa.LargeListArray.from_arrays(pa.array(sets.offsets), pa.array(sets.values, pa.uint32()))
            index = np.zeros(batch.num_rows, dtype=np.int64)
            index[rows] = distinct
            column = lists.take(pa.array(index, mask=~shingled))
        else:
            column = pa.nulls(batch.num_rows, pa.large_list(pa.uint32()))
        return batch.drop_columns(["text"]).append_column(SETS, column)

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        keeper = np.arange(n)  # row index of each row's keeper
        # a match in an earlier run's index is removed, and never keeps this run's copies
        prior = _prior(table)
        grouped = pc.is_valid(table[COMPONENT]).to_numpy(zero_copy_only=False) & ~prior
        if grouped.any():
            members, starts = _components_in_priority(table, self._priority(table), grouped)
            if self.config.verify:
                started = time.perf_counter()
                self._verify(table, members, starts, keeper)
                self._metrics["verify_seconds"] += time.perf_counter() - started
            else:  # unverified: the first in priority keeps, the rest are its copies
                keeper[members] = members[np.repeat(starts[:-1], np.diff(starts))]
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

    def _verify(self, table: pa.Table, members: np.ndarray, starts: np.ndarray, keeper: np.ndarray) -> None:
        """Greedy verified clusters of every component (:func:`greedy_clusters`, compiled:
        the same checks in the same order as a loop over members, which in Python was most of
        the group step once the shingling moved to the map side)."""
        sets = _RowSets(table, self.config)
        codes, num_codes = _bucket_codes(sets.bands)
        max_hops = self.config.max_hops or table.num_rows + 1  # null: any chain
        checked, skipped, confirmed, chained = greedy_clusters(
            members, starts, codes, num_codes, sets.sets.values, sets.sets.offsets, sets.index, sets.sketch,
            sets.least, self.config.threshold, max_hops, keeper).tolist()
        self._metrics["verified_pairs"] += checked
        self._metrics["prefiltered_pairs"] += skipped
        self._metrics["confirmed_pairs"] += confirmed
        if chained:
            self._metrics["chain_matches"] = self._metrics.get("chain_matches", 0) + chained


def _components_in_priority(table: pa.Table, order: np.ndarray, grouped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grouped rows, component after component, each in keep priority, and where each
    component starts (``starts[-1]`` is the row count)."""
    visit = order[grouped[order]]
    _, component = distinct_values(table[COMPONENT])
    by_component = np.argsort(component[visit], kind="stable")  # stable: priority within each
    members = visit[by_component]
    bounds = np.flatnonzero(np.diff(component[members])) + 1
    return members.astype(np.int64), np.concatenate(([0], bounds, [len(members)])).astype(np.int64)


def _bucket_codes(bands: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's LSH buckets as dense codes: (band, band hash) pairs numbered from 0."""
    codes = np.empty(bands.shape, dtype=np.int64)
    total = 0
    for b in range(bands.shape[1]):
        distinct, codes[:, b] = np.unique(bands[:, b], return_inverse=True)
        codes[:, b] += total
        total += len(distinct)
    return codes, total


def _prior(table: pa.Table) -> np.ndarray:
    """Whether each row matched an earlier run's index (all False without an index)."""
    if PRIOR_MATCH not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    return pc.fill_null(table[PRIOR_MATCH], False).to_numpy(zero_copy_only=False)


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
    """Per row of a keep batch: its shingle set (from :data:`SETS` when the shuffle projected
    the rows; otherwise, called on documents directly, each distinct text shingled here: exact
    copies are common among candidates, 46% of them in the 1M-document benchmark, which has
    no exact dedup stage before), its band buckets and its sketch; and the lowest sketch
    estimate the pre-filter lets through."""

    def __init__(self, table: pa.Table, config: MinhashDedupConfig) -> None:
        if SETS in table.column_names:
            lists = table[SETS].combine_chunks()
            # offsets index the whole child array (a null row's run is empty)
            self.sets = ShingleSets(values=lists.values.to_numpy(), offsets=lists.offsets.to_numpy())
            self.index = np.arange(table.num_rows)
        else:
            dictionary, self.index = distinct_values(table["text"], nulls=True)
            self.sets = verification_sets(dictionary, config)
        # widths from the columns' types: what the signature step wrote is what counts
        self.bands, _ = fixed_list_values(table[BANDS], table.schema.field(BANDS).type.list_size)
        sketch, _ = fixed_list_values(table[SKETCH], table.schema.field(SKETCH).type.list_size)
        self.sketch = sketch.astype(np.uint8)
        self.least = config.threshold - prefilter_margin(sketch.shape[1])  # lowest estimate checked exactly

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
