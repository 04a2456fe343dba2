"""Writing one output shard: whole upstream files streamed into ``part-<n>``, or, with
``output.split_by``, into one ``<column>=<value>/part-<n>`` per value of that column.

The split folders follow Hive's partition naming, which pyarrow datasets, Spark and
DuckDB read as a column. Values are written as they are when they are plain names
(letters, digits, ``_.-``); others are percent-encoded, and a null is ``__null__``.
"""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import quote

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
    """One output file, opened on its first batch."""

    def __init__(self, out: Store, name: str, fmt: str) -> None:
        self.out, self.name, self.fmt = out, name, fmt
        self.rows = 0
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

    def close(self) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.close()
        if self.text is not None:
            self.text.close()
        self.sink.close()
        return {"kind": "output", "key": self.name, "rows": self.rows,
                "bytes": self.out.fs.get_file_info(self.out.fs_path(self.name)).size, "reasons": "{}"}


def write_shard(store: Store, out: Store, shard: int, keys: list[str], fmt: str, batch_rows: int,
                split_by: str | None = None) -> list[dict[str, Any]]:
    """Write the rows of ``keys`` (committed document files) as shard number ``shard``;
    one stats row per file written. Without ``split_by`` the shard is one file, even when
    empty; with it, one file per value present."""
    name = f"part-{shard:05d}.{'parquet' if fmt == 'parquet' else 'jsonl.gz'}"
    files: dict[str, _ShardFile] = {}
    if split_by is None:
        files[name] = _ShardFile(out, name, fmt)
    for key in keys:
        for batch in iter_file_batches(store, key, batch_rows):
            batch = batch.drop_columns([c for c in INTERNAL_COLUMNS if c in batch.column_names])
            if split_by is None:
                files[name].write(batch)
                continue
            if split_by not in batch.column_names:
                raise ValueError(f"output.split_by: the last stage's rows have no column {split_by!r} "
                                 f"(columns: {', '.join(batch.column_names)})")
            values = batch[split_by]
            for value in pc.unique(values).to_pylist():
                rows = pc.is_null(values) if value is None else pc.equal(values, pa.scalar(value, values.type))
                path = f"{split_folder(split_by, value)}/{name}"
                if path not in files:
                    files[path] = _ShardFile(out, path, fmt)
                files[path].write(batch.filter(pc.fill_null(rows, False)))
    return [f.close() for f in files.values()]
