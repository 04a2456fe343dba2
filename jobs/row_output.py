"""How the read-only commands print rows: a text table of one-line previews, JSON lines, or a
Parquet file (local or ``s3://``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from jobs import report
from jobs.parts import conform, parquet_writer
from jobs.store import S3Options, filesystem_for

PREVIEW_CHARS = 60
"""Longest cell of a text table or value of an explanation; longer text is cut."""
NEWLINE = "⏎"


def preview(value: Any, width: int = PREVIEW_CHARS) -> str:
    """``value`` on one line of at most ``width`` characters: newlines shown as ⏎, tabs as
    spaces, a cut as … (bytes decoded, lists and structs as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False, default=_json_value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    text = text.replace("\r\n", NEWLINE).replace("\n", NEWLINE).replace("\r", NEWLINE).replace("\t", " ")
    return text if len(text) <= width else text[:width - 1] + "…"


def quoted(text: str | None, width: int = PREVIEW_CHARS) -> str:
    """A text preview in quotes, for a line that says whose text it is."""
    return "(no text)" if text is None else f'"{preview(text, width)}"'


def _cell(value: Any) -> Any:
    # numbers stay numbers so that report.table aligns them right
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else preview(value)


def render_table(table: pa.Table) -> str:
    """``table`` as aligned text, each cell a one-line preview."""
    rows = [[_cell(v) for v in row.values()] for row in table.to_pylist()]
    return report.table(table.column_names, rows)


def _json_value(value: Any) -> Any:
    """What JSON has no type for: bytes as text (undecodable bytes escaped), the rest as str."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def jsonl_lines(table: pa.Table) -> Iterator[str]:
    """One JSON object per row, values whole (not previews)."""
    for row in table.to_pylist():
        yield json.dumps(row, ensure_ascii=False, default=_json_value)


def write_parquet(batches: Iterable[pa.Table], uri: str, options: S3Options) -> int:
    """Stream ``batches`` into one Parquet file at ``uri`` (a local path or ``s3://``);
    the rows written. Nothing is written when there are no batches."""
    fs, path = filesystem_for(uri, options)
    rows = 0
    writer = sink = None
    try:
        for batch in batches:
            if writer is None:
                sink = fs.open_output_stream(path)
                writer = parquet_writer(sink, batch.schema)
            writer.write_table(batch if batch.schema == writer.schema else conform(batch, writer.schema))
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
            sink.close()  # ParquetWriter leaves a stream it was handed open; on S3 this completes the upload
    return rows
