"""Writing one output shard: whole upstream files streamed into ``part-<n>``, or, with
``output.split_by``, into one ``<column>=<value>/.../part-<n>`` per combination of the
columns' values.

The split folders follow Hive's partition naming, which pyarrow datasets, Spark and
DuckDB read as a column. Values are written as they are when they are plain names
(letters, digits, ``_.-``); others are percent-encoded, and a null is ``__null__``.
"""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.parts import INTERNAL_COLUMNS, conform, iter_file_batches, parquet_writer
from jobs.store import Store

NULL_VALUE = "__null__"


def split_folder(column: str, value: Any) -> str:
    """The folder of one value of the split column, e.g. ``mix_phase=anneal``."""
    text = NULL_VALUE if value is None else str(value)
    return f"{column}={quote(text, safe='')}"


class _ShardFile:
    """One output file, opened on its first batch; with ``weight_column``, that column's sum."""

    def __init__(self, out: Store, name: str, fmt: str, weight_column: str | None = None) -> None:
        self.out, self.name, self.fmt, self.weight_column = out, name, fmt, weight_column
        self.rows, self.weight = 0, 0.0
        self.sink = out.open_output(name)
        self.text = gzip.GzipFile(fileobj=self.sink, mode="wb", mtime=0) if fmt == "jsonl" else None
        self.writer: Any = None

    def write(self, batch: pa.Table) -> None:
        if self.text is not None:
            for record in batch.to_pylist():
                self.text.write(json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n")
        else:
            if self.writer is None:
                self.writer = parquet_writer(self.sink, batch.schema)
            self.writer.write_table(conform(batch, self.writer.schema) if batch.schema != self.writer.schema
                                    else batch)
        self.rows += batch.num_rows
        if self.weight_column is not None:
            self.weight += float(pc.sum(batch[self.weight_column]).as_py() or 0)

    def close(self) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.close()
        if self.text is not None:
            self.text.close()
        self.sink.close()
        # an output stats row's JSON field carries the file's weight (drop reasons elsewhere)
        return {"kind": "output", "key": self.name, "rows": self.rows,
                "bytes": self.out.fs.get_file_info(self.out.fs_path(self.name)).size,
                "reasons": json.dumps({"weight": self.weight} if self.weight_column else {})}


def _partitions(batch: pa.Table, columns: list[str]) -> list[tuple[str, pa.Table]]:
    """(folder, rows) for each combination of ``columns``' values present in ``batch``."""
    missing = [c for c in columns if c not in batch.column_names]
    if missing:
        raise ValueError(f"output.split_by: the last stage's rows have no column {missing[0]!r} "
                         f"(columns: {', '.join(batch.column_names)})")
    codes = np.zeros(batch.num_rows, np.int64)
    encoded = []
    for column in columns:
        values = pc.dictionary_encode(batch[column], null_encoding="encode").combine_chunks()
        indices = values.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        codes = codes * max(len(values.dictionary), 1) + indices
        encoded.append((values.dictionary.to_pylist(), indices))
    out = []
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        folder = "/".join(split_folder(c, names[indices[rows[0]]]) for c, (names, indices) in zip(columns, encoded))
        out.append((folder, batch.take(pa.array(rows))))
    return out


def write_shard(store: Store, out: Store, shard: int, keys: list[str], fmt: str, batch_rows: int,
                split_by: list[str] | None = None, weight_column: str | None = None) -> list[dict[str, Any]]:
    """Write the rows of ``keys`` (committed document files) as shard number ``shard``;
    one stats row per file written. Without ``split_by`` the shard is one file, even when
    empty; with it, one file per combination of the columns' values present, in nested
    ``<column>=<value>/`` folders."""
    name = f"part-{shard:05d}.{'parquet' if fmt == 'parquet' else 'jsonl.gz'}"
    files: dict[str, _ShardFile] = {}
    if not split_by:
        files[name] = _ShardFile(out, name, fmt, weight_column)
    for key in keys:
        for batch in iter_file_batches(store, key, batch_rows):
            batch = batch.drop_columns([c for c in INTERNAL_COLUMNS if c in batch.column_names])
            if not split_by:
                files[name].write(batch)
                continue
            for folder, rows in _partitions(batch, split_by):
                path = f"{folder}/{name}"
                if path not in files:
                    files[path] = _ShardFile(out, path, fmt, weight_column)
                files[path].write(rows)
    return [f.close() for f in files.values()]
