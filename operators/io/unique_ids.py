"""Documents that repeat an id: found across every input file, all but the first quarantined.

Dedup, clustering and every artifact lookup join documents by ``id``; two documents with one
id would be one node to them, and near-duplicate removal could keep both copies of one pair
and remove a document whose partner it kept. So, unless ``input.duplicate_ids: allow``,
jobs/ runs these two primitives just before the first stage that declares
``needs_unique_ids`` (``minhash_dedup.buckets``, ``semantic_dedup``):

1. ``unique_ids.find`` (group by id; only ids seen more than once survive the shuffle's
   first step): for each repeated id, the files it occurs in and the *first* file, the
   smallest read-part name (read parts are named by input file index and chunk, so that is
   input order). Emits the artifact split per document file.
2. ``unique_ids.apply`` (map, each file with its slice): the first occurrence, in row
   order, of a repeated id in its first file is kept; every other occurrence gets
   ``drop_reason = "read:duplicate_id"`` and goes to ``rejected/`` with its text.

Deterministic: the kept occurrence depends only on the input files' order and row order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DROP_REASON, FILE_COLUMN, GroupOperator, MapOperator, OperatorConfig, with_drop_reason
from operators.registry import register

FIRST_FILE = "_first_file"
DUPLICATE_ID = "read:duplicate_id"
SLICE_SCHEMA = pa.schema([("id", pa.string()), (FILE_COLUMN, pa.string()), (FIRST_FILE, pa.string())])


class UniqueIdsConfig(OperatorConfig):
    """No parameters: which occurrence is kept is fixed (the first in input order)."""


@register("unique_ids.find")
class DuplicateIds(GroupOperator[UniqueIdsConfig]):
    """Ids that more than one document carries, with the files they occur in.

    Reads: id. Writes no document column: emits (id, file, first file) for every file
    a repeated id occurs in, split per document file. Deterministic.
    """

    version = 1
    Config = UniqueIdsConfig
    reads = ("id",)
    emits = "artifact"
    artifact_by_file = True
    lone_rows_matter = False  # an id seen once is no duplicate

    def group_key(self) -> tuple[str, ...]:
        return ("id",)

    def project(self, batch: pa.Table) -> pa.Table:
        return batch.select(["id", FILE_COLUMN])

    def __call__(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return SLICE_SCHEMA.empty_table()
        counts = table.group_by("id", use_threads=False).aggregate([(FILE_COLUMN, "count"), (FILE_COLUMN, "min")])
        repeated = counts.filter(pc.greater(counts[f"{FILE_COLUMN}_count"], 1))
        rows = table.filter(pc.is_in(table["id"], value_set=repeated["id"]))
        pairs = rows.group_by(["id", FILE_COLUMN], use_threads=False).aggregate([])
        first = repeated[f"{FILE_COLUMN}_min"].take(pc.index_in(pairs["id"], value_set=repeated["id"]))
        out = pa.table({"id": pairs["id"], FILE_COLUMN: pairs[FILE_COLUMN], FIRST_FILE: first}, schema=SLICE_SCHEMA)
        return out.sort_by([("id", "ascending"), (FILE_COLUMN, "ascending")])


@register("unique_ids.apply")
class QuarantineDuplicateIds(MapOperator[UniqueIdsConfig]):
    """Marks every occurrence of a repeated id but the first with ``read:duplicate_id``.

    Reads: id (and this file's slice of ``unique_ids.find``'s artifact). Writes:
    drop_reason. Built once per file, so the ids kept so far in the file carry over from
    batch to batch. Deterministic.
    """

    keeps_rows = True
    version = 1
    Config = UniqueIdsConfig
    reads = ("id",)
    writes = (DROP_REASON,)
    uses_artifact = True

    def __init__(self, config: UniqueIdsConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._first_here: set[str] = set()  # repeated ids whose first occurrence is in this file
        self._kept: set[str] = set()  # ... and already kept
        self._repeated = pa.array([], pa.string())
        if artifact is not None and artifact.num_rows:
            self._repeated = artifact["id"].combine_chunks()
            here = pc.equal(artifact[FILE_COLUMN], artifact[FIRST_FILE])
            self._first_here = set(artifact.filter(here)["id"].to_pylist())

    def __call__(self, batch: pa.Table) -> pa.Table:
        drop = pc.is_in(batch["id"], value_set=self._repeated).to_numpy(zero_copy_only=False).copy()
        for row in np.flatnonzero(drop):  # few rows: only the repeated ids
            doc_id = batch["id"][int(row)].as_py()
            if doc_id in self._first_here and doc_id not in self._kept:
                self._kept.add(doc_id)
                drop[row] = False
        reasons = pa.array(np.where(drop, DUPLICATE_ID, None), pa.string())
        return with_drop_reason(batch, reasons)
