"""Turning raw input records into document tables, with bad rows kept as data.

Pure functions: the caller (jobs/) opens files and hands over lines or Arrow batches. Each
call returns ``(documents, rejected)``. Documents have the core columns ``id``, ``text``,
``source`` plus pass-through metadata; rejected rows add ``drop_reason`` and provenance
(``input_uri``, ``input_line``, and ``raw`` bytes where the row could not be parsed), so
nothing read is ever lost silently.

Drop reasons: ``read:malformed_json`` (including lines nested deeper than
:data:`MAX_NESTING` and numbers Python will not convert, such as integers of more than 4,300
digits), ``read:invalid_utf8``, ``read:missing_text``, ``read:non_string_text``,
``read:empty_text``, ``read:text_too_large``; and ``read:corrupt_file`` (one row per input
file that cannot be read to its end, made by :func:`corrupt_file_row` for the caller, which
sees the file break).

Ids: taken from ``id_field`` when present and non-null (cast to string), otherwise derived
from the input URI and the row's 0-based position in that file, so they are stable across
runs over the same files (not across re-sharding of the input).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DROP_REASON

METADATA = "metadata"
"""JSONL fields other than text, id and source, kept losslessly as one JSON string column."""

REJECTED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        (DROP_REASON, pa.string()),
        ("input_uri", pa.string()),
        ("input_line", pa.int64()),
        ("raw", pa.binary()),
    ]
)

JSONL_SCHEMA = pa.schema(
    [("id", pa.string()), ("text", pa.string()), ("source", pa.string()), (METADATA, pa.string())]
)


@dataclass(frozen=True)
class FieldMapping:
    """Where the core columns come from in the input, and the limits on text."""

    text_field: str = "text"
    id_field: str | None = "id"
    source_field: str | None = "source"
    source: str | None = None  # one source for the whole input; overrides source_field
    default_source: str = "unknown"
    max_text_bytes: int = 1_000_000


MAX_NESTING = 512
"""Deepest nesting of arrays and objects a JSON line may have; deeper lines are
``read:malformed_json``. Python's ``json`` recurses once per level and fails at a depth that
depends on how deep the caller's stack already is; a fixed limit below it gives every line
the same verdict wherever it is parsed."""


def json_depth(value: object) -> int:
    """How deep lists and dicts nest in a parsed JSON value (0 for a scalar), level by level:
    no recursion, whatever the depth."""
    depth, level = 0, [value]
    while containers := [v for v in level if isinstance(v, (dict, list))]:
        depth += 1
        level = [child for v in containers for child in (v.values() if isinstance(v, dict) else v)]
    return depth


def corrupt_file_row(uri: str, line: int) -> pa.Table:
    """The rejected row that stands for an input file which cannot be read past ``line``
    (0-based: the first line or row not read): ``read:corrupt_file``, no text, no raw bytes."""
    rejects = _Rejects(uri)
    rejects.add("corrupt_file", line, id_=derived_id(uri, line))
    return rejects.table()


def derived_id(uri: str, row: int) -> str:
    """Stable id for a row without one: a digest of the input URI plus the row number."""
    digest = hashlib.blake2b(uri.encode(), digest_size=6).hexdigest()
    return f"{digest}-{row}"


class _Rejects:
    """Accumulates rejected rows column-wise."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.rows: dict[str, list] = {name: [] for name in REJECTED_SCHEMA.names}

    def add(self, reason: str, line: int, *, id_: str | None = None, text: str | None = None,
            source: str | None = None, raw: bytes | None = None) -> None:
        for name, value in (("id", id_), ("text", text), ("source", source),
                            (DROP_REASON, f"read:{reason}"), ("input_uri", self.uri),
                            ("input_line", line), ("raw", raw)):
            self.rows[name].append(value)

    def table(self) -> pa.Table:
        return pa.table(self.rows, schema=REJECTED_SCHEMA)


def parse_jsonl_lines(lines: Sequence[bytes], uri: str, first_line: int,
                      fields: FieldMapping) -> tuple[pa.Table, pa.Table]:
    """Parse JSON lines (one document each) into documents and rejected rows.

    Blank lines are skipped without a record: they are line separators, not documents.

    Args:
        lines: Raw lines, without or with their trailing newline.
        uri: The input file, for derived ids and provenance.
        first_line: 0-based line number of ``lines[0]`` within the file.
        fields: Field mapping and limits.
    """
    docs: dict[str, list] = {name: [] for name in JSONL_SCHEMA.names}
    rejects = _Rejects(uri)
    for offset, raw in enumerate(lines):
        line_no = first_line + offset
        if not raw.strip():
            continue
        if line_no == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte-order mark starts the file, not the record
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            rejects.add("invalid_utf8", line_no, id_=derived_id(uri, line_no), raw=bytes(raw))
            continue
        # ValueError: not JSON, or an integer of more digits than Python converts.
        # RecursionError (json.loads, or str() of a nested id): within MAX_NESTING only on
        # an unusually deep stack; the line is rejected either way, never the run stopped.
        try:
            record = json.loads(decoded)
            loaded = isinstance(record, dict) and not _deeper_than(raw, record, MAX_NESTING)
            if loaded:
                doc_id = _record_id(record, fields, uri, line_no)
                source = _record_source(record, fields)
        except (ValueError, RecursionError):
            loaded = False
        if not loaded:
            rejects.add("malformed_json", line_no, id_=derived_id(uri, line_no), raw=bytes(raw))
            continue
        if not _utf8_ok(doc_id, source):  # lone surrogates from \ud800-style escapes
            rejects.add("invalid_utf8", line_no, id_=derived_id(uri, line_no), raw=bytes(raw))
            continue
        text = record.get(fields.text_field)
        reason = _text_problem(text, fields)
        if reason is not None:
            keep_text = text if reason in ("empty_text", "text_too_large") else None
            rejects.add(reason, line_no, id_=doc_id, text=keep_text, source=source,
                        raw=None if keep_text is not None else bytes(raw))
            continue
        rest = {k: v for k, v in record.items()
                if k not in (fields.text_field, fields.id_field, fields.source_field)}
        try:
            meta = json.dumps(rest, ensure_ascii=False, sort_keys=True) if rest else None
        except RecursionError:  # as above: only on a deep stack
            rejects.add("malformed_json", line_no, id_=doc_id, source=source, raw=bytes(raw))
            continue
        if meta is not None and not _utf8_ok(meta):
            rejects.add("invalid_utf8", line_no, id_=doc_id, source=source, raw=bytes(raw))
            continue
        docs["id"].append(doc_id)
        docs["text"].append(text)
        docs["source"].append(source)
        docs[METADATA].append(meta)
    return pa.table(docs, schema=JSONL_SCHEMA), rejects.table()


def _deeper_than(raw: bytes, record: dict, limit: int) -> bool:
    # a line with no more brackets than the limit nests no deeper: two byte counts for most
    return raw.count(b"[") + raw.count(b"{") > limit and json_depth(record) > limit


def _utf8_ok(*values: str) -> bool:
    try:
        for value in values:
            value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _record_id(record: dict, fields: FieldMapping, uri: str, line_no: int) -> str:
    value = record.get(fields.id_field) if fields.id_field else None
    return derived_id(uri, line_no) if value is None else str(value)


def _record_source(record: dict, fields: FieldMapping) -> str:
    if fields.source is not None:
        return fields.source
    value = record.get(fields.source_field) if fields.source_field else None
    return fields.default_source if value is None else str(value)


def _text_problem(text: object, fields: FieldMapping) -> str | None:
    if text is None:
        return "missing_text"
    if not isinstance(text, str):
        return "non_string_text"
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes
        return "invalid_utf8"
    if not text.strip():
        return "empty_text"
    if size > fields.max_text_bytes:
        return "text_too_large"
    return None


def normalize_table(table: pa.Table, uri: str, first_row: int,
                    fields: FieldMapping) -> tuple[pa.Table, pa.Table]:
    """Map a columnar batch (Parquet input) onto the document schema.

    Columns other than the mapped ones pass through untouched. A text column of binary type
    is decoded row by row; rows that are not valid UTF-8 are rejected.
    """
    n = table.num_rows
    rows = pa.array(range(first_row, first_row + n), pa.int64())
    if fields.text_field not in table.column_names:
        text = pa.nulls(n, pa.string())
        reasons = pa.array(["read:missing_text"] * n, pa.string())
    else:
        text, reasons = _checked_text(table[fields.text_field], fields)
    ids = _column_ids(table, fields, uri, first_row)
    if fields.source is not None or not fields.source_field or fields.source_field not in table.column_names:
        source = pa.array([fields.source or fields.default_source] * n, pa.string())
    else:
        source = pc.fill_null(pc.cast(table[fields.source_field], pa.string()), fields.default_source)
    mapped = {fields.text_field, fields.id_field, fields.source_field, "id", "text", "source"}
    rest = [name for name in table.column_names if name not in mapped]
    docs = pa.table({"id": ids, "text": text, "source": source, **{k: table[k] for k in rest}})
    rejected_mask = pc.is_valid(reasons)
    rejected = docs.filter(rejected_mask)
    rejected = pa.table({
        "id": rejected["id"], "text": rejected["text"], "source": rejected["source"],
        DROP_REASON: reasons.filter(rejected_mask), "input_uri": pa.array([uri] * len(rejected), pa.string()),
        "input_line": rows.filter(rejected_mask), "raw": pa.nulls(len(rejected), pa.binary()),
    }, schema=REJECTED_SCHEMA)
    return docs.filter(pc.invert(rejected_mask)), rejected


def _checked_text(column: pa.ChunkedArray, fields: FieldMapping) -> tuple[pa.Array, pa.Array]:
    column = column.combine_chunks()
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        decoded, bad = [], []
        for value in column.to_pylist():
            try:
                decoded.append(None if value is None else value.decode("utf-8"))
                bad.append(False)
            except UnicodeDecodeError:
                decoded.append(None)
                bad.append(True)
        text = pa.array(decoded, pa.string())
        invalid = pa.array(bad, pa.bool_())
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text, invalid = column.cast(pa.string()), pa.array([False] * len(column), pa.bool_())
    else:
        n = len(column)
        reason = pa.array(["read:non_string_text"] * n, pa.string())
        missing = pc.is_null(column)
        return pa.nulls(n, pa.string()), pc.if_else(missing, "read:missing_text", reason)
    size = pc.binary_length(text)
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    reasons = pc.case_when(
        pc.make_struct(pc.is_null(column), invalid, blank, pc.greater(size, fields.max_text_bytes)),
        "read:missing_text", "read:invalid_utf8", "read:empty_text", "read:text_too_large",
    )
    return text, reasons


def _column_ids(table: pa.Table, fields: FieldMapping, uri: str, first_row: int) -> pa.Array:
    derived = pa.array([derived_id(uri, first_row + i) for i in range(table.num_rows)], pa.string())
    if fields.id_field and fields.id_field in table.column_names:
        return pc.coalesce(pc.cast(table[fields.id_field], pa.string()), derived)
    return derived
