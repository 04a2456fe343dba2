"""Reading committed document files; linked files are joined back to their bases.

A map stage that changes little of its input stores only the change, linked to its input
file (its *base*, named in the schema metadata with the order of all the logical file's
columns), and readers here put the two back together:

* a **column file** (``jobs.parts.column_part``) holds the columns a row-keeping stage
  wrote, row for row with its base;
* a **row file** (``jobs.parts.row_part``) also holds ``_tamis_row``, the base row of each of
  its rows, ascending: the rows a filtering stage kept, without a copy of their text.

A base may itself be linked; reads follow the chain, streaming, with about two batches
held per link.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.store import Store

BASE_KEY, COLUMNS_KEY = b"tamis.base", b"tamis.columns"
"""Schema metadata of a linked file: the key of the file holding its other columns, and the
JSON list of all its columns in order (its own and the base's it keeps)."""
ROW_COLUMN = "_tamis_row"
"""A row file's column: the base row (0-based, ascending) each of its rows stands for."""


def iter_file_batches(store: Store, key: str, batch_rows: int,
                      columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Stream a committed Parquet file in batches of at most ``batch_rows`` rows
    (only ``columns`` when given: the others are never read or decompressed).

    A linked file streams its own columns alongside the batches of its base, read for the
    other columns: row for row (a column file) or taking the rows it names (a row file).
    """
    with store.fs.open_input_file(store.fs_path(key)) as f:
        parquet = pq.ParquetFile(f)
        meta = parquet.schema_arrow.metadata or {}
        if BASE_KEY not in meta:
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                yield pa.Table.from_batches([batch])
            return
        names = parquet.schema_arrow.names
        base, order = meta[BASE_KEY].decode(), json.loads(meta[COLUMNS_KEY])
        if columns is not None and set(columns) - set(order):
            raise KeyError(f"{key}: no columns {sorted(set(columns) - set(order))} (it has {order})")
        order = [c for c in order if columns is None or c in columns]
        mine = [c for c in order if c in names]
        wanted = [c for c in order if c not in names]
        if ROW_COLUMN in names:
            own = _RowRanges(parquet.iter_batches(batch_size=batch_rows, columns=[ROW_COLUMN, *mine]))
            yield from _taken_rows(store, key, base, own, order, wanted, batch_rows)
            return
        rows = parquet.metadata.num_rows
        own = _RowRanges(parquet.iter_batches(batch_size=batch_rows, columns=mine)) if mine else None
        if not wanted:  # everything asked for is in this file
            while own is not None and (piece := own.take(batch_rows)).num_rows:
                yield piece.select(order)
            return
        offset = 0
        for batch in iter_file_batches(store, base, batch_rows, wanted):
            offset += batch.num_rows
            if own is None:  # none of this file's own columns asked for: its rows are its base's
                yield batch.select(order)
                continue
            piece = own.take(batch.num_rows)
            yield pa.Table.from_arrays([piece[c] if c in names else batch[c] for c in order], names=order)
    if offset != rows:
        raise RuntimeError(f"{key} has {rows} rows but its base {base} has {offset}")


def _taken_rows(store: Store, key: str, base: str, own: "_RowRanges", order: list[str], wanted: list[str],
                batch_rows: int) -> Iterator[pa.Table]:
    """A row file's batches: its base's batches, streamed, taking the rows it names."""
    pending = own.take(batch_rows)
    if not wanted:  # only this file's own columns asked for
        while pending.num_rows:
            yield pending.select(order)
            pending = own.take(batch_rows)
        return
    start = 0  # base row of the current base batch
    for batch in iter_file_batches(store, base, batch_rows, wanted):
        end = start + batch.num_rows
        while pending.num_rows:
            rows = pending[ROW_COLUMN].to_numpy()
            n = int(np.searchsorted(rows, end))  # rows before the end of this base batch
            if n:
                taken = batch.take(pa.array(rows[:n] - start))
                picked = pending.slice(0, n)
                yield pa.Table.from_arrays([taken[c] if c in wanted else picked[c] for c in order], names=order)
            if n < pending.num_rows:  # the others lie beyond this base batch
                pending = pending.slice(n)
                break
            pending = own.take(batch_rows)
        start = end
        if not pending.num_rows:
            return  # the rest of the base holds none of this file's rows
    raise RuntimeError(f"{key} names rows past the end of its base {base} ({start} rows)")


class _RowRanges:
    """Consecutive row ranges of a stream of batches, whatever their sizes (a column file's
    own batches need not line up with its base's), holding at most about two batches."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches, self._held = batches, None

    def take(self, n: int) -> pa.Table:
        """The next ``n`` rows (fewer at the end; none, with no columns, once exhausted)."""
        parts = [] if self._held is None else [self._held]
        held = sum(p.num_rows for p in parts)
        while held < n and (batch := next(self._batches, None)) is not None:
            parts.append(pa.Table.from_batches([batch]))
            held += batch.num_rows
        if not parts:
            return pa.table({})
        table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        self._held = table.slice(n)
        return table.slice(0, n)


def read_part(store: Store, key: str, columns: list[str] | None = None) -> pa.Table:
    """A whole committed document file (a linked file joined to its base)."""
    batches = list(iter_file_batches(store, key, 1 << 20, columns))
    if batches:
        return pa.concat_tables(batches)
    schema = logical_schema(store, key)
    return schema.empty_table() if columns is None else pa.schema([schema.field(c) for c in columns]).empty_table()


def logical_columns(store: Store, key: str) -> list[str]:
    """All the columns a document file holds, in order, a linked file's base's included."""
    schema = pq.read_schema(store.fs_path(key), filesystem=store.fs)
    meta = schema.metadata or {}
    return json.loads(meta[COLUMNS_KEY]) if COLUMNS_KEY in meta else schema.names


def logical_schema(store: Store, key: str) -> pa.Schema:
    """The schema of a document file as read, a linked file's base's columns included."""
    schema = pq.read_schema(store.fs_path(key), filesystem=store.fs)
    meta = schema.metadata or {}
    if BASE_KEY not in meta:
        return schema
    fields = {f.name: f for f in logical_schema(store, meta[BASE_KEY].decode())}
    fields.update((f.name, f) for f in schema)
    return pa.schema([fields[c] for c in json.loads(meta[COLUMNS_KEY])])


def logical_size(store: Store, key: str) -> tuple[int, int]:
    """(bytes, rows) of a document file. A linked file counts its base's bytes too, in
    proportion to the rows it keeps: the size the scheduler plans waves, partitions and
    output shards by."""
    path = store.fs_path(key)
    with store.fs.open_input_file(path) as f:
        parquet = pq.ParquetFile(f)
        meta: dict[bytes, Any] = parquet.schema_arrow.metadata or {}
        rows = parquet.metadata.num_rows
    size = int(store.fs.get_file_info(path).size or 0)
    if BASE_KEY in meta:
        size += linked_bytes(store, meta[BASE_KEY].decode(), rows)
    return size, rows


def linked_bytes(store: Store, base: str, rows: int) -> int:
    """The share of ``base``'s logical bytes that a linked file of ``rows`` rows stands for."""
    base_bytes, base_rows = logical_size(store, base)
    return base_bytes * rows // base_rows if base_rows else 0


def logical_bytes(store: Store, key: str) -> int:
    """Bytes of a document file including its share of its bases (see :func:`logical_size`)."""
    return logical_size(store, key)[0]
