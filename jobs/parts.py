"""Checkpoint files: streaming writers and readers for one stage's parts.

Under a stage's wave prefix, kept documents go to ``<name>``, rejected ones (those with a
``drop_reason``) to ``rejected/<name>``, and artifact rows to ``artifact/<name>``. Each writer
reports one stats row per file, which the scheduler turns into a commit.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.part_reader import (BASE_KEY, COLUMNS_KEY, ROW_COLUMN, iter_file_batches, linked_bytes,  # noqa: F401
                              logical_bytes, logical_columns, logical_schema, read_part)
from jobs.store import Store
from operators.base import DROP_REASON, FILE_COLUMN, TAKE_COLUMN
from operators.runs import run_starts

INTERNAL_COLUMNS = (DROP_REASON, FILE_COLUMN)
UNIQUE_COLUMNS = ("text", "id")
STATS_SCHEMA = pa.schema([("kind", pa.string()), ("key", pa.string()), ("rows", pa.int64()),
                          ("bytes", pa.int64()), ("reasons", pa.string())])
SUBDIR = {"kept": "", "rejected": "rejected/", "artifact": "artifact/", "artifact_by_file": "artifact/"}


@dataclass(frozen=True)
class FileOutput:
    """Where one task writes: a store, the stage's (wave) prefix, and the Parquet codec."""

    store: Store
    prefix: str
    compression: str = "zstd"

    def writer(self) -> "PartWriter":
        return PartWriter(self)

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}/{SUBDIR[kind]}{name}"


class PartWriter:
    """Streams batches into one or more part files and reports a stats row for each."""

    def __init__(self, out: FileOutput) -> None:
        self.out = out
        self._writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self._sinks: dict[tuple[str, str], Any] = {}
        self._rows: Counter[tuple[str, str]] = Counter()
        self._reasons: dict[tuple[str, str], Counter[str]] = {}

    def write(self, name: str, table: pa.Table) -> None:
        """Documents: split on the drop reason, internal columns removed from kept rows."""
        if DROP_REASON in table.column_names:
            dropped = pc.is_valid(table[DROP_REASON])
            self.append("rejected", name, _without(table.filter(dropped), (FILE_COLUMN,)))
            table = table.filter(pc.invert(dropped))
        self.append("kept", name, _without(table, INTERNAL_COLUMNS))

    def append(self, kind: str, name: str, table: pa.Table) -> None:
        """Append ``table`` to the ``kind`` file called ``name`` (created on first rows)."""
        if table.num_rows == 0:
            return
        slot = (kind, name)
        if slot not in self._writers:
            sink = self.out.store.open_output(self.out.key(kind, name))
            self._sinks[slot] = sink  # ParquetWriter does not close a stream it was handed
            self._writers[slot] = parquet_writer(sink, table.schema, self.out.compression)
            self._reasons[slot] = Counter()
        writer = self._writers[slot]
        if table.schema != writer.schema:
            table = conform(table, writer.schema)
        writer.write_table(table)
        self._rows[slot] += table.num_rows
        if kind == "rejected":
            counts = pc.value_counts(table[DROP_REASON]).to_pylist()
            self._reasons[slot].update({c["values"]: c["counts"] for c in counts})

    def close(self) -> list[dict[str, Any]]:
        stats = []
        for (kind, name), writer in self._writers.items():
            writer.close()
            self._sinks[(kind, name)].close()  # on S3 this completes the upload
            key = self.out.key(kind, name)
            size = self.out.store.fs.get_file_info(self.out.store.fs_path(key)).size
            base = (writer.schema.metadata or {}).get(BASE_KEY)
            if base:  # a linked file stands for (its share of) its base's columns too
                size += linked_bytes(self.out.store, base.decode(), self._rows[(kind, name)])
            stats.append({"kind": kind, "key": key, "rows": self._rows[(kind, name)], "bytes": size,
                          "reasons": json.dumps(dict(self._reasons[(kind, name)]))})
        self._writers.clear()
        self._sinks.clear()
        return stats


def append_by_file(writer: PartWriter, artifact: pa.Table, folder: str = "") -> None:
    """Split an artifact per document file, so each map task later reads only its own slice.

    A slice is named after its document file; ``folder`` (e.g. ``p-00003/``) keeps apart
    the slices that several tasks write for one file (one per shuffle partition).
    """
    artifact = artifact.sort_by(FILE_COLUMN)
    files = artifact[FILE_COLUMN].to_numpy(zero_copy_only=False)
    bounds = [*np.flatnonzero(run_starts(files)), len(files)]
    for begin, end in zip(bounds, bounds[1:]):
        writer.append("artifact_by_file", f"{folder}{files[begin]}", artifact.slice(begin, end - begin))


def parquet_writer(sink: Any, schema: pa.Schema, compression: str = "zstd") -> pq.ParquetWriter:
    """A Parquet writer (zstd unless told) with dictionaries and statistics for flat
    columns only, and no dictionary for ``text`` and ``id``.

    On nested columns (embeddings, token ids, signatures: lists of numbers) dictionaries and
    statistics cost write and read time and save no space. Texts and ids are (nearly) all
    distinct, so their dictionaries are built only to be dropped (docs/benchmarks.md).
    """
    flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
    return pq.ParquetWriter(sink, schema, compression=compression, write_statistics=flat,
                            use_dictionary=[c for c in flat if c not in UNIQUE_COLUMNS])


def _without(table: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    return table.drop_columns([c for c in columns if c in table.column_names])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a batch to the file's schema (e.g. an all-null column typed null in one batch)."""
    columns = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def stats_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=STATS_SCHEMA)


def metrics_row(metrics: dict[str, float], prefix: str = "") -> list[dict[str, Any]]:
    """A stats row carrying operator counters (keyed by the writing stage's ``prefix``, which
    tells a chain's stages apart), or none when there are none."""
    return [{"kind": "metrics", "key": prefix, "rows": 0, "bytes": 0, "reasons": json.dumps(metrics)}] if metrics else []


def column_part(batch: pa.Table, result: pa.Table, written: tuple[str, ...], base: str,
                base_columns: list[str] | None = None) -> pa.Table:
    """What a row-keeping map stage stores of ``result``: only the columns it ``written``,
    with its input file ``base`` and the order of all the output's columns in the schema
    metadata (input columns the operator dropped are left out of that order).

    ``base_columns``: all of the input file's columns, in order, when ``batch`` holds only
    some of them (the columns the operator reads); the others pass through unread.

    Raises:
        RuntimeError: ``result`` is not ``batch`` row for row with only ``written`` columns
            new or changed (an operator declaring ``keeps_rows`` that does not).
    """
    if result.num_rows != batch.num_rows:
        raise RuntimeError(f"an operator declaring keeps_rows returned {result.num_rows} rows for {batch.num_rows}")
    for name in result.column_names:
        if name not in written and (name not in batch.column_names or not _same_data(result[name], batch[name])):
            raise RuntimeError(f"an operator declaring keeps_rows wrote column {name!r}, which it does not "
                               f"declare (it writes {list(written)})")
    order = result.column_names
    if base_columns is not None:  # unread columns pass through, in place; new ones go last, as set_column puts them
        kept = [c for c in base_columns if c in result.column_names or c not in batch.column_names]
        order = kept + [c for c in result.column_names if c not in kept]
    meta = {BASE_KEY: base.encode(), COLUMNS_KEY: json.dumps(order).encode()}
    return result.select([c for c in result.column_names if c in written]).replace_schema_metadata(meta)


def row_part(batch: pa.Table, result: pa.Table, written: tuple[str, ...], base: str,
             first_row: int) -> tuple[pa.Table, pa.Table]:
    """What a row-keeping map stage that marks rows dropped (``drop_reason`` among the
    columns it writes, as ``filter`` does) stores of ``result``: (kept, rejected).

    Kept rows become a row file: their row numbers in ``base`` (``batch`` being that file's
    rows from ``first_row`` on, every column read) and any other column written; their text
    is not copied. Rejected rows are returned whole, for ``rejected/``, which users read.

    Raises:
        RuntimeError: as :func:`column_part`.
    """
    part = column_part(batch, result, written, base)
    meta = dict(part.schema.metadata)
    meta[COLUMNS_KEY] = json.dumps([c for c in json.loads(meta[COLUMNS_KEY]) if c not in INTERNAL_COLUMNS]).encode()
    dropped = pc.fill_null(pc.is_valid(result[DROP_REASON]), False)
    rows = pa.array(np.arange(first_row, first_row + batch.num_rows, dtype=np.int64))
    own = _without(part, INTERNAL_COLUMNS)
    kept = pa.Table.from_arrays([rows, *own.columns], names=[ROW_COLUMN, *own.column_names])
    kept = kept.filter(pc.invert(dropped)).replace_schema_metadata(meta)
    return kept, _without(result.filter(dropped), (FILE_COLUMN,))


def taken_part(batch: pa.Table, result: pa.Table, written: tuple[str, ...], base: str,
               first_row: int) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """What a map stage whose operator ``repeats_rows`` (``mix.sample``) stores of ``result``:
    (kept, rejected, the batch indices of the kept rows).

    ``batch`` is the input file's rows from ``first_row`` on, every column; the operator was
    given some of its columns and returned, per output row, the index of the input row it
    copies (:data:`TAKE_COLUMN`, non-decreasing) and the columns it writes. Kept rows become a
    row file whose row numbers repeat where a row was copied, holding only the written
    columns; rejected rows are returned whole, for ``rejected/``.

    Raises:
        RuntimeError: ``result`` has no valid take column, or columns it does not declare.
    """
    if TAKE_COLUMN not in result.column_names:
        raise RuntimeError(f"an operator declaring repeats_rows returned no {TAKE_COLUMN} column")
    take = result[TAKE_COLUMN].to_numpy().astype(np.int64, copy=False)
    if len(take) and (take[0] < 0 or take[-1] >= batch.num_rows or (np.diff(take) < 0).any()):
        raise RuntimeError(f"an operator declaring repeats_rows returned {TAKE_COLUMN} values that are not "
                           f"non-decreasing row indices of its batch of {batch.num_rows}")
    extra = [c for c in result.column_names if c not in written and c != TAKE_COLUMN and c not in batch.column_names]
    if extra:
        raise RuntimeError(f"an operator declaring repeats_rows wrote columns {extra}, which it does not "
                           f"declare (it writes {list(written)})")
    own = [c for c in written if c in result.column_names]
    order = [c for c in batch.column_names if c not in INTERNAL_COLUMNS]
    order += [c for c in own if c not in order and c not in INTERNAL_COLUMNS]
    meta = {BASE_KEY: base.encode(), COLUMNS_KEY: json.dumps(order).encode()}
    dropped = (pc.fill_null(pc.is_valid(result[DROP_REASON]), False).to_numpy(zero_copy_only=False)
               if DROP_REASON in result.column_names else np.zeros(result.num_rows, bool))
    kept_rows = np.flatnonzero(~dropped)
    stored = [c for c in own if c not in INTERNAL_COLUMNS]
    picked = result.select(stored).take(pa.array(kept_rows))
    kept = pa.Table.from_arrays([pa.array(first_row + take[kept_rows], pa.int64()), *picked.columns],
                                names=[ROW_COLUMN, *stored]).replace_schema_metadata(meta)
    rejected_rows = np.flatnonzero(dropped)
    whole = batch.take(pa.array(take[rejected_rows]))
    mine = result.take(pa.array(rejected_rows))
    names = [c for c in dict.fromkeys([*batch.column_names, *own]) if c != FILE_COLUMN]
    rejected = pa.Table.from_arrays([mine[c] if c in own else whole[c] for c in names], names=names)
    return kept, rejected, take[kept_rows]


def _same_data(a: pa.ChunkedArray, b: pa.ChunkedArray) -> bool:
    """Whether two columns are the same memory (a column passed through untouched)."""
    def where(column: pa.ChunkedArray) -> list[tuple[int, int, list[int]]]:
        return [(c.offset, len(c), [buf.address if buf is not None else 0 for buf in c.buffers()])
                for c in column.chunks]
    return a.type == b.type and where(a) == where(b)


def read_files(store: Store, keys: list[str]) -> pa.Table | None:
    """Concatenate whole files (artifacts, which are small by contract); None if no rows."""
    tables = [pq.read_table(store.fs_path(k), filesystem=store.fs) for k in keys]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def basename(key: str) -> str:
    return key.rsplit("/", 1)[-1]
