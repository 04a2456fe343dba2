"""Exact duplicates of documents kept by earlier runs: the exact-dedup history index.

With ``exact_dedup``'s ``index: {name: ...}``, every successful run adds the normalized-text
hash and id of each document it kept to ``exact_indexes/<name>/`` (cross-run state,
jobs/state.py versions it, one appended segment per run). A later run meets its own hashes
with the index's in a shuffle on the hash (``index_match``), so the index is never loaded
whole into one worker, and ``index_assign`` writes the match onto each document as
``dedup_exact_history_id``: the smallest id of the earlier kept document with the same
normalized text (null without one). A ``filter`` rule ``is_null(dedup_exact_history_id)``
removes them (reason ``dedup:exact_history``). This is the exact counterpart of MinHash's
index (operators/dedup/minhash_index.py): the same idea as LSHBloom's cross-snapshot index
(Khan et al. 2024, arXiv 2411.04257) with the whole hash as the only band.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from operators.base import FILE_COLUMN, CrossRunState, GroupOperator, MapOperator, set_column
from operators.dedup.exact_config import HASH, HASH_VERSION, HISTORY_ID, KEEP, ExactDedupConfig
from operators.registry import register
from operators.runs import run_heads, run_starts

_PRIOR = "_exact_prior"
MATCH_SCHEMA = pa.schema([("id", pa.string()), (FILE_COLUMN, pa.string()), (HISTORY_ID, pa.string())])
INDEX_SCHEMA = pa.schema([(HASH, pa.string()), ("id", pa.string())])


class ReadsExactIndex:
    """The history index as cross-run state; its versions usable together only with the same
    hash (scope and the hash's version)."""

    @classmethod
    def cross_run_state(cls, config: ExactDedupConfig) -> CrossRunState | None:  # type: ignore[override]
        index = config.index
        if not index.name:
            return None
        compat = {"scope": config.scope, "hash_version": HASH_VERSION}
        return CrossRunState("exact_indexes", "exact index", index.name, compat, ("id", HASH, KEEP),
                             index.update, compact_segments=index.compact_segments)

    @classmethod
    def fold_state(cls, config: ExactDedupConfig, previous: pa.Table | None,  # type: ignore[override]
                   documents: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """The (hash, id) rows of the run's kept documents (the output, after the filter)."""
        yield INDEX_SCHEMA.empty_table()
        for batch in documents:
            if KEEP in batch.column_names:  # an output without its filter still adds one per hash
                batch = batch.filter(pc.fill_null(batch[KEEP], False))
            yield pa.table({HASH: batch[HASH], "id": batch["id"]}, schema=INDEX_SCHEMA)


@register("exact_dedup.index_match")
class ExactIndexMatch(ReadsExactIndex, GroupOperator[ExactDedupConfig]):
    """Documents whose hash an indexed document of an earlier run has.

    Reads: id, dedup_exact_hash, plus the index rows jobs/ adds (cross-run state). Writes no
    document column: emits the match artifact (id, its file, dedup_exact_history_id: the
    smallest indexed id with that hash). Only shared hashes reach the operator.
    """

    version = 1
    Config = ExactDedupConfig
    reads = ("id", HASH)
    emits = "artifact"
    artifact_by_file = True  # a rerun file's matches can be many: each file gets only its slice
    lone_rows_matter = False  # a hash only the run or only the index has matches nothing

    def group_key(self) -> tuple[str, ...]:
        return (HASH,)

    def project(self, batch: pa.Table) -> pa.Table:
        return batch.select(["id", FILE_COLUMN, HASH]).append_column(
            _PRIOR, pa.array(np.zeros(batch.num_rows, dtype=bool)))

    def state_project(self, rows: pa.Table) -> pa.Table:
        """Index rows in the projected form (no file; flagged as prior)."""
        return pa.table({"id": rows["id"], FILE_COLUMN: pa.nulls(rows.num_rows, pa.string()), HASH: rows[HASH],
                         _PRIOR: pa.array(np.ones(rows.num_rows, dtype=bool))})

    def __call__(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return MATCH_SCHEMA.empty_table()
        # rows arrive sorted by (hash, id): a hash's first prior row holds its smallest prior id
        group = run_heads(run_starts(table[HASH].to_numpy(zero_copy_only=False)))
        prior = table[_PRIOR].to_numpy(zero_copy_only=False)
        prior_rows, new_rows = np.flatnonzero(prior), np.flatnonzero(~prior)
        groups, first = np.unique(group[prior_rows], return_index=True)
        at = np.minimum(np.searchsorted(groups, group[new_rows]), max(len(groups) - 1, 0))
        hit = groups[at] == group[new_rows] if len(groups) else np.zeros(len(new_rows), dtype=bool)
        new, matched = new_rows[hit], prior_rows[first[at[hit]]]
        return pa.table({"id": table["id"].take(pa.array(new)), FILE_COLUMN: table[FILE_COLUMN].take(pa.array(new)),
                         HISTORY_ID: table["id"].take(pa.array(matched))}, schema=MATCH_SCHEMA)


@register("exact_dedup.index_assign")
class AssignHistory(MapOperator[ExactDedupConfig]):
    """Each document's match in the history index, from its file's slice of the match artifact.

    Reads: id. Writes: dedup_exact_history_id (the smallest indexed id with the document's
    normalized text; null without one).
    """

    keeps_rows = True
    version = 1
    Config = ExactDedupConfig
    reads = ("id",)
    writes = (HISTORY_ID,)
    uses_artifact = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.artifact is None or self.artifact.num_rows == 0:
            return set_column(batch, HISTORY_ID, pa.nulls(batch.num_rows, pa.string()))
        history = self.artifact["id"]
        return set_column(batch, HISTORY_ID, self.artifact[HISTORY_ID].take(pc.index_in(batch["id"], value_set=history)))
