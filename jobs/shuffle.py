"""A group stage's shuffle through the store: partition files, then reduce each partition.

Phase 1 (one task per input file) reads the file in batches, projects each batch with the
operator, applies the operator at once to rows with a null key when it lets them bypass the
shuffle, and appends the other rows to one Arrow IPC fragment per hash partition:
``<wave>/shuffle/p-<partition>/f-<file number>.arrow``. Phase 2 (one task per partition)
reads that partition's fragments, sorts them by key and id, and applies the operator to the
whole partition. Names depend only on the inputs and the partition count, so a retried task
overwrites its own fragments; the scheduler clears ``shuffle/`` before and after.

This replaces Ray Data's hash shuffle (docs/architecture.md says why): the data stays in
files, and memory is at most BUFFER_BYTES of rows per task in phase 1 and one partition in
phase 2. No Ray here: jobs/execute.py runs these functions as Ray Data tasks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.checkpoint import FileRef
from jobs.parts import FILE_COLUMN, FileOutput, append_by_file, basename, conform, iter_file_batches, metrics_row
from jobs.store import Store
from operators.base import GroupOperator
from operators.hashing import splitmix64, string_hashes
from operators.runs import run_starts

SHUFFLE_DIR = "shuffle"
FRAGMENT_KIND = "shuffle"
"""Stats-row kind of a phase-1 fragment (``key``, ``rows``); never committed."""
_INCREMENT = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's
_IPC = pa.ipc.IpcWriteOptions(compression="lz4")  # fragments are read once, soon: speed over size


def partition_of(rows: pa.Table, key: tuple[str, ...], partitions: int) -> np.ndarray:
    """Hash partition of each row's key, the same in every task for the same key values.

    Integer keys are mixed directly; other keys are hashed once per distinct value (BLAKE2b
    of the value's string form), so the cost is per distinct value, not per row.
    """
    h = np.zeros(rows.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in key:
            column = rows[k].combine_chunks()
            if pa.types.is_integer(column.type):
                values = pc.fill_null(column, 0).cast(pa.uint64(), safe=False).to_numpy()
            else:
                values = string_hashes(column)
            # splitmix64's finalizer of (h ^ splitmix64(values)): splitmix64 adds its increment first
            h = splitmix64((h ^ splitmix64(values)) - _INCREMENT)
    return (h % np.uint64(partitions)).astype(np.int64)


def projected(op: GroupOperator[Any], batch: pa.Table, name: str) -> pa.Table:
    """The operator's projection of a document batch from file ``name`` (tagged with it)."""
    if FILE_COLUMN in batch.column_names:  # artifact rows that already name their document's file
        return op.project(batch)
    return op.project(batch.append_column(FILE_COLUMN, pa.repeat(pa.scalar(name, pa.string()), batch.num_rows)))


def null_key(table: pa.Table, key: tuple[str, ...]) -> pa.Array:
    mask = pc.is_null(table[key[0]])
    for k in key[1:]:
        mask = pc.or_(mask, pc.is_null(table[k]))
    return mask


SAMPLE_FILES = 4
"""Upstream files whose first batch :func:`shuffled_bytes` projects."""


SAMPLE_ROWS = 2048
"""Rows of each sampled batch that :func:`shuffled_bytes` projects: a projection may cost
real work (``minhash_dedup.keep`` shingles its candidates), and this runs on the driver."""


SAMPLE_MARGIN = 2.0
"""Partitions are sized for this many times the bytes the sample projects: room for files
the sample does not represent, since a phase-2 task holds its partition, sorted, in memory."""


def partition_count(op: GroupOperator[Any], store: Store, files: list[FileRef], batch_rows: int, cpus: int,
                    partition_mb: int) -> int:
    """Partitions of a group stage: enough for :func:`shuffled_bytes` to fit ``partition_mb``
    MiB each with :data:`SAMPLE_MARGIN`, and at least one per CPU (or the group step runs on
    a few cores)."""
    return max(cpus, math.ceil(SAMPLE_MARGIN * shuffled_bytes(op, store, files, batch_rows) / (partition_mb << 20)))


def shuffled_bytes(op: GroupOperator[Any], store: Store, files: list[FileRef], batch_rows: int) -> int:
    """Estimated in-memory bytes of the rows a group stage shuffles, to size its partitions.

    The first :data:`SAMPLE_ROWS` rows of up to :data:`SAMPLE_FILES` upstream files, spread
    over the list, are projected as phase 1 would (without the rows that bypass the shuffle); its bytes per
    input row, times all input rows. What is shuffled differs from the documents by much
    (LSH buckets move band rows, not text; the keep step only its candidates), and every
    partition costs each phase-1 task a fragment file, so sizing by the documents' bytes
    made several times too many partitions (docs/benchmarks.md).
    """
    files = [f for f in files if f.rows]
    if not files:
        return 0
    picks = sorted({round(i * (len(files) - 1) / max(SAMPLE_FILES - 1, 1)) for i in range(min(SAMPLE_FILES, len(files)))})
    columns = list(op.columns_read(op.config)) if op.emits == "artifact" else None
    sampled = shuffled = 0
    for i in picks:
        batch = next(iter(iter_file_batches(store, files[i].key, min(batch_rows, SAMPLE_ROWS), columns)), None)
        if batch is None or batch.num_rows == 0:
            continue
        rows = projected(op, batch, basename(files[i].key))
        if op.bypass_null_keys:
            rows = rows.filter(pc.invert(null_key(rows, op.group_key())))
        sampled += batch.num_rows
        shuffled += rows.nbytes
    return int(shuffled / max(sampled, 1) * sum(f.rows for f in files))


def fragment_key(out: FileOutput, partition: int, number: int) -> str:
    return f"{out.prefix}/{SHUFFLE_DIR}/p-{partition:05d}/f-{number:06d}.arrow"


BUFFER_BYTES = 32 << 20
"""Rows a phase-1 task holds before writing them to its fragments. Written batch by batch,
a file's rows made many small IPC batches per partition, and phase 2 sorts many chunks far
more slowly than one."""


class _Fragments:
    """One open IPC writer per partition this file has rows for; rows are held up to
    :data:`BUFFER_BYTES` and written as one batch per partition."""

    def __init__(self, store: Store, out: FileOutput, number: int) -> None:
        self.store, self.out, self.number = store, out, number
        self._open: dict[int, tuple[Any, pa.ipc.RecordBatchFileWriter, pa.Schema, str]] = {}
        self._rows: dict[int, int] = {}
        self._held: dict[int, list[pa.Table]] = {}
        self._held_bytes = 0

    def append(self, partition: int, rows: pa.Table) -> None:
        self._held.setdefault(partition, []).append(rows)
        self._held_bytes += rows.nbytes
        if self._held_bytes >= BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        for partition, tables in sorted(self._held.items()):
            if partition not in self._open:
                key = fragment_key(self.out, partition, self.number)
                sink = self.store.open_output(key)
                schema = tables[0].schema
                self._open[partition] = (sink, pa.ipc.new_file(sink, schema, options=_IPC), schema, key)
                self._rows[partition] = 0
            _, writer, schema, _ = self._open[partition]
            rows = pa.concat_tables([t if t.schema == schema else conform(t, schema) for t in tables])
            writer.write_table(rows.combine_chunks())
            self._rows[partition] += rows.num_rows
        self._held.clear()
        self._held_bytes = 0

    def close(self) -> list[dict[str, Any]]:
        self._flush()
        stats = []
        for partition, (sink, writer, _, key) in sorted(self._open.items()):
            writer.close()
            sink.close()
            stats.append({"kind": FRAGMENT_KIND, "key": key, "rows": self._rows[partition], "bytes": 0,
                          "reasons": "{}"})
        return stats


def partition_file(op: GroupOperator[Any], store: Store, file_key: str, number: int, from_state: bool,
                   out: FileOutput, partitions: int, batch_rows: int, columns: list[str] | None) -> list[dict[str, Any]]:
    """Phase 1 for one file: fragment rows plus stats of any bypass output written."""
    key = op.group_key()
    name = basename(file_key)
    fragments = _Fragments(store, out, number)
    # cross-run state rows (jobs/state.py) are never bypassed: they only match
    single = out.writer() if op.bypass_null_keys and op.emits == "documents" and not from_state else None
    for batch in iter_file_batches(store, file_key, batch_rows, None if from_state else columns):
        rows = op.state_project(batch) if from_state else projected(op, batch, name)
        if op.bypass_null_keys:
            nulls = null_key(rows, key)
            if single is not None:  # rows with a null key are groups of one
                single.write(f"single-{name}", op(rows.filter(nulls)))
            rows = rows.filter(pc.invert(nulls))
        if rows.num_rows == 0:
            continue
        part = partition_of(rows, key, partitions)
        order = np.argsort(part, kind="stable")
        bounds = np.flatnonzero(np.diff(part[order])) + 1
        rows = rows.take(pa.array(order))
        for begin, end in zip([0, *bounds], [*bounds, len(order)]):
            fragments.append(int(part[order[begin]]), rows.slice(begin, end - begin))
    return fragments.close() + (single.close() if single is not None else [])


def fragments_by_partition(stats: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """Split phase-1 stats into (output stats, {partition: fragment keys in file order})."""
    rest, by_partition = [], {}
    for row in stats:
        if row["kind"] != FRAGMENT_KIND:
            rest.append(row)
        elif row["rows"]:
            partition = int(row["key"].rsplit("/", 2)[-2].removeprefix("p-"))
            by_partition.setdefault(partition, []).append(row["key"])
    return rest, {p: sorted(keys) for p, keys in sorted(by_partition.items())}


def read_fragments(store: Store, keys: list[str]) -> pa.Table:
    tables = []
    for key in keys:
        with store.fs.open_input_file(store.fs_path(key)) as f:
            tables.append(pa.ipc.open_file(f).read_all())
    return pa.concat_tables(tables, promote_options="permissive")


def reduce_partition(op: GroupOperator[Any], store: Store, partition: int, keys: list[str],
                     out: FileOutput) -> list[dict[str, Any]]:
    """Phase 2: the operator on one whole partition, rows sorted by key then id."""
    table = read_fragments(store, keys)
    if not op.lone_rows_matter:
        table = _in_shared_groups(table, op.group_key())
    # Fragment order follows the inputs, but operators rely on sorted rows (a bucket's first
    # row holds its smallest id), and sorting keeps the output independent of batching.
    if op.rows_sorted:
        order = dict.fromkeys((*op.group_key(), "id" if "id" in table.column_names else op.group_key()[0]))
        table = table.take(_sort_indices(table, list(order)))
    result = op(table)
    writer = out.writer()
    name = f"part-{partition:05d}.parquet"
    if op.emits == "artifact" and op.group_key() == (FILE_COLUMN,):
        append_by_file(writer, result)  # each file's rows are all in this partition
    elif op.emits == "artifact" and op.artifact_by_file:  # a file's rows are in several partitions
        append_by_file(writer, result, folder=f"p-{partition:05d}/")
    elif op.emits == "artifact":
        writer.append("artifact", name, result)
    else:
        writer.write(name, result)
    return writer.close() + metrics_row(op.metrics())


def _sort_indices(table: pa.Table, columns: list[str]) -> pa.Array:
    """Indices sorting ``table`` by ``columns``, ascending; the sort columns are made one
    chunk first (Arrow sorts one chunk faster than many)."""
    keys = pa.table({c: table[c].combine_chunks() for c in columns})
    return pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in columns])


def _in_shared_groups(table: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """The rows of ``table`` whose key another row shares, grouped by key."""
    order = _sort_indices(table, list(key))
    starts = run_starts(*(table[c].take(order).to_numpy(zero_copy_only=False) for c in key))
    heads = np.flatnonzero(starts)
    lengths = np.diff(np.append(heads, len(starts)))
    return table.take(order.filter(pa.array(np.repeat(lengths > 1, lengths))))
