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

Ids: taken from ``id_field`` when present and non-null, otherwise derived from the input
URI and the row's 0-based position in that file, so they are stable across runs over the
same files (not across re-sharding of the input). An id (or source) that is not a string
becomes text by one rule for both formats (:func:`value_text`): a number as today (Python's
``str`` for JSONL, Arrow's cast for Parquet), true/false, a list or an object (Parquet: a
list, struct or map, the map as ``[key, value]`` pairs) as its JSON text with sorted keys.
Bytes (Parquet binary) are decoded as UTF-8; a value that is not UTF-8 rejects the row as
``read:invalid_utf8``.

Parquet columns that would be taken for tamis's own (:data:`DROP_REASON`, or a name starting
with :data:`INTERNAL_PREFIX`) pass through renamed ``input_<name>``: a ``rejected/`` file
read back is all documents, its old reasons kept as data.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring

import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DROP_REASON

METADATA = "metadata"
"""JSONL fields other than text, id and source, as one JSON string column (sorted keys). Exact:
every float is written as the line wrote it (Python's float would turn ``1e400`` into
``Infinity`` and a 55-digit decimal into its shortest repr), every integer as Python reads it.
The one change: the constants Python reads but JSON lacks (``NaN``, ``Infinity``,
``-Infinity``) become strings."""

INTERNAL_PREFIX = "_tamis_"
"""Names jobs/ gives its own columns (``operators.base.FILE_COLUMN``, jobs' row column)."""

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


BOM = b"\xef\xbb\xbf"
"""A UTF-8 byte-order mark: dropped from the start of a file's first line, never part of a record."""

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
    exact: list[_ExactFloat] = []  # the current line's numbers a float would not write back
    decoder = _json_decoder(exact)
    for offset, raw in enumerate(lines):
        line_no = first_line + offset
        if line_no == 0 and raw.startswith(BOM):
            raw = raw[len(BOM):]  # a UTF-8 byte-order mark starts the file, not the record
        if not raw.strip():
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            rejects.add("invalid_utf8", line_no, id_=derived_id(uri, line_no), raw=bytes(raw))
            continue
        # ValueError: not JSON, or an integer of more digits than Python converts.
        # RecursionError (the decoder; json.dumps below): within MAX_NESTING only on an
        # unusually deep stack; the line is rejected either way, never the run stopped.
        try:
            exact.clear()
            record = decoder.decode(decoded)
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
            if not rest:
                meta = None
            elif exact:  # a rare line: json.dumps would write those numbers as floats
                meta = json_text(rest)
            else:
                meta = json.dumps(rest, ensure_ascii=False, sort_keys=True)
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
    return derived_id(uri, line_no) if value is None else value_text(value)


def _record_source(record: dict, fields: FieldMapping) -> str:
    if fields.source is not None:
        return fields.source
    value = record.get(fields.source_field) if fields.source_field else None
    return fields.default_source if value is None else value_text(value)


def value_text(value: object) -> str:
    """An id or source value as text: a string as it is; true/false, a list or an object
    (from Parquet: a list, struct or map's pairs) as its :func:`json_text`; a number (or
    another Parquet scalar Arrow cannot cast) as Python's ``str`` writes it."""
    if isinstance(value, str):
        return value
    return json_text(value) if isinstance(value, (bool, list, tuple, dict)) else str(value)


class _ExactFloat(float):
    """A JSON number that ``float``'s repr would write as another number (``1e400`` as
    ``inf``, ``0.1000000000000000055511151231257827021181583404541015625`` as ``0.1``), or
    one of the constants Python accepts: a float to every check, written back as ``json``."""

    json: str


def _json_decoder(exact: list[_ExactFloat]) -> json.JSONDecoder:
    """``json.loads``'s decoder, except that each number a float would not write back as it
    was written becomes an :class:`_ExactFloat`, also appended to ``exact``."""

    def number(text: str) -> float:
        value = float(text)
        if float.__repr__(value) == text:  # most numbers: a plain float is exact
            return value
        kept = _ExactFloat(value)
        kept.json = text if text[-1].isdigit() else f'"{text}"'  # NaN, Infinity: not JSON
        exact.append(kept)
        return kept

    return json.JSONDecoder(parse_float=number, parse_constant=number)


class _Punctuation(str):
    """Text :func:`json_text` writes as it is."""


_COMMA, _COLON = _Punctuation(", "), ": "


def json_text(value: object) -> str:
    """``json.dumps(value, ensure_ascii=False, sort_keys=True)``, except that a number keeps
    the text it was read from, a tuple is a list and any other value outside JSON (bytes,
    a date) is a string (bytes decoded as UTF-8, others by ``str``). Iterative: no
    recursion however deep the value nests."""
    out: list[str] = []
    todo: list[object] = [value]
    while todo:
        item = todo.pop()
        if type(item) is _Punctuation:
            out.append(item)
        elif isinstance(item, str):
            out.append(encode_basestring(item))
        elif item is None or isinstance(item, bool):
            out.append("null" if item is None else "true" if item else "false")
        elif isinstance(item, _ExactFloat):
            out.append(item.json)
        elif isinstance(item, int):
            out.append(int.__repr__(item))
        elif isinstance(item, float):  # not finite only from Parquet: a string, as JSONL's NaN becomes
            out.append(float.__repr__(item) if math.isfinite(item) else f'"{json.dumps(item)}"')
        elif isinstance(item, dict):
            out.append("{")
            todo.append(_Punctuation("}"))
            for i, key in enumerate(sorted(item, reverse=True)):
                # last pair first: popped, they come out key, value, comma, key...
                todo += (_COMMA,) * bool(i) + (item[key], _Punctuation(encode_basestring(str(key)) + _COLON))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            todo.append(_Punctuation("]"))
            for i, child in enumerate(reversed(item)):
                todo += (_COMMA,) * bool(i) + (child,)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            out.append(encode_basestring(bytes(item).decode("utf-8", "backslashreplace")))
        else:
            out.append(encode_basestring(str(item)))
    return "".join(out)


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

    Columns other than the mapped ones pass through untouched, but for those named like
    tamis's own (``drop_reason``, ``_tamis_*``), renamed ``input_<name>``. Text may be any
    string or binary type, dictionary-encoded or not; a row whose text, id or source is bytes
    that are not UTF-8 is rejected. Ids and sources of other types become text by
    :func:`value_text`'s rule, as for JSONL.
    """
    n = table.num_rows
    rows = pa.array(range(first_row, first_row + n), pa.int64())
    if fields.text_field not in table.column_names:
        text = pa.nulls(n, pa.string())
        reasons = pa.array(["read:missing_text"] * n, pa.string())
    else:
        text, reasons = _checked_text(table[fields.text_field], fields)
    derived = pa.array([derived_id(uri, first_row + i) for i in range(n)], pa.string())
    ids, bad_id = _as_strings(table[fields.id_field]) if fields.id_field in table.column_names else (derived, None)
    ids = pc.coalesce(ids, derived)
    bad_source = None
    if fields.source is not None or not fields.source_field or fields.source_field not in table.column_names:
        source = pa.array([fields.source or fields.default_source] * n, pa.string())
    else:
        source, bad_source = _as_strings(table[fields.source_field])
        source = pc.fill_null(source, fields.default_source)
    for bad in (bad_id, bad_source):  # checked before the text, as for a JSON line
        if bad is not None:
            reasons = pc.if_else(bad, "read:invalid_utf8", reasons)
    mapped = {fields.text_field, fields.id_field, fields.source_field, "id", "text", "source"}
    rest = [name for name in table.column_names if name not in mapped]
    docs = pa.table({"id": ids, "text": text, "source": source,
                     **dict(zip(_passed_names(rest, table.column_names), (table[k] for k in rest)))})
    rejected_mask = pc.is_valid(reasons)
    rejected = docs.filter(rejected_mask)
    rejected = pa.table({
        "id": rejected["id"], "text": rejected["text"], "source": rejected["source"],
        DROP_REASON: reasons.filter(rejected_mask), "input_uri": pa.array([uri] * len(rejected), pa.string()),
        "input_line": rows.filter(rejected_mask), "raw": pa.nulls(len(rejected), pa.binary()),
    }, schema=REJECTED_SCHEMA)
    return docs.filter(pc.invert(rejected_mask)), rejected


def _passed_names(rest: list[str], taken: list[str]) -> list[str]:
    """The names pass-through columns get: their own, or ``input_<name>`` for one that jobs/
    would take for its own (a ``drop_reason`` column would reject its rows), prefixed again
    while that name is taken too."""
    used = {*taken, "id", "text", "source"}
    names = []
    for name in rest:
        if name == DROP_REASON or name.startswith(INTERNAL_PREFIX):
            while name in used:
                name = "input_" + name
            used.add(name)
        names.append(name)
    return names


def _is_text_type(type_: pa.DataType) -> bool:
    return pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_string_view(type_)


def _is_bytes_type(type_: pa.DataType) -> bool:
    return (pa.types.is_binary(type_) or pa.types.is_large_binary(type_) or pa.types.is_binary_view(type_)
            or pa.types.is_fixed_size_binary(type_))


def _as_strings(column: pa.ChunkedArray) -> tuple[pa.Array, pa.Array | None]:
    """A column's values as strings, and which rows hold bytes that are not UTF-8 (null
    there; None when no row can). Dictionaries are decoded; strings stay; bytes are decoded
    as UTF-8; lists, structs and maps are :func:`json_text`; other types go through Arrow's
    cast to string, or :func:`value_text` where Arrow has none."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    array = column.combine_chunks()
    if _is_text_type(array.type):
        return array.cast(pa.string()), None
    if _is_bytes_type(array.type):
        try:
            return array.cast(pa.string()), None
        except pa.ArrowInvalid:  # some value is not UTF-8: find which
            decoded, bad = [], []
            for value in array.to_pylist():
                try:
                    decoded.append(None if value is None else value.decode("utf-8"))
                    bad.append(False)
                except UnicodeDecodeError:
                    decoded.append(None)
                    bad.append(True)
            return pa.array(decoded, pa.string()), pa.array(bad, pa.bool_())
    if not pa.types.is_nested(array.type):
        try:
            return array.cast(pa.string()), None
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            pass
    return pa.array([None if v is None else value_text(v) for v in array.to_pylist()], pa.string()), None


def _checked_text(column: pa.ChunkedArray, fields: FieldMapping) -> tuple[pa.Array, pa.Array]:
    value_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (_is_text_type(value_type) or _is_bytes_type(value_type)):
        n = len(column)
        reason = pa.array(["read:non_string_text"] * n, pa.string())
        missing = pc.is_null(column)
        return pa.nulls(n, pa.string()), pc.if_else(missing, "read:missing_text", reason)
    text, invalid = _as_strings(column)
    if invalid is None:
        invalid = pa.array([False] * len(text), pa.bool_())
    missing = pc.and_(pc.is_null(text), pc.invert(invalid))
    size = pc.binary_length(text)
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
    reasons = pc.case_when(
        pc.make_struct(missing, invalid, blank, pc.greater(size, fields.max_text_bytes)),
        "read:missing_text", "read:invalid_utf8", "read:empty_text", "read:text_too_large",
    )
    return text, reasons
