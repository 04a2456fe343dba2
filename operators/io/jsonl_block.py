"""JSON lines parsed a batch at a time by Arrow's C++ reader, per line where it cannot.

:func:`operators.io.records.parse_jsonl_lines` runs ``json.loads`` and a dozen checks per
line in Python: a large share of the read stage (docs/benchmarks.md). Most batches of a
clean corpus hold only objects whose mapped fields are strings and that have no other
field; Arrow parses such a batch in one call, and the few checks left (null, blank or
oversized text, missing ids) are column operations; other fields go to ``metadata`` as
the per-line path writes it when every one of them is a string on every row (Arrow cannot
tell a missing field from a null one, nor keep ``1`` apart from ``1.0`` in a column of
numbers). Whatever Arrow refuses (invalid UTF-8, a lone surrogate escape, a non-object
line, a number where a string is expected, a repeated key) or what falls outside that
(a nested value, looked for before Arrow sees the batch on lines with many brackets) sends
the whole batch down the per-line path, so the result is always what ``parse_jsonl_lines``
returns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from operators.base import DROP_REASON
from operators.io.records import (BOM, JSONL_SCHEMA, REJECTED_SCHEMA, FieldMapping, derived_id,
                                  parse_jsonl_lines)

_ARROW_BRACKETS = 64  # a line with no more brackets nests no deeper: cheap for Arrow


def parse_jsonl_batch(lines: Sequence[bytes], uri: str, first_line: int,
                      fields: FieldMapping) -> tuple[pa.Table, pa.Table]:
    """``parse_jsonl_lines(lines, uri, first_line, fields)``, through Arrow when it can."""
    parsed = arrow_rows(lines, first_line, fields)
    if parsed is None:
        return parse_jsonl_lines(lines, uri, first_line, fields)
    table, metadata, numbers, raws = parsed
    n = table.num_rows
    text = table[fields.text_field].combine_chunks()
    ids = _ids(table, fields, uri, numbers)
    if fields.source is not None or not fields.source_field:
        source = pa.array([fields.source or fields.default_source] * n, pa.string())
    else:
        source = pc.fill_null(table[fields.source_field].combine_chunks(), fields.default_source)
    reasons = _text_problems(text, fields)
    bad = np.flatnonzero(reasons != "")
    if not bad.size:
        return pa.table([ids, text, source, metadata], schema=JSONL_SCHEMA), REJECTED_SCHEMA.empty_table()
    take = pa.array(bad)
    missing = reasons[bad] == "missing_text"  # the per-line path keeps the raw line only then
    rejected = pa.table({
        "id": ids.take(take), "text": text.take(take), "source": source.take(take),
        DROP_REASON: pa.array(["read:" + r for r in reasons[bad]], pa.string()),
        "input_uri": pa.array([uri] * bad.size, pa.string()), "input_line": pa.array(numbers[bad], pa.int64()),
        "raw": pa.array([raws[i] if m else None for i, m in zip(bad, missing)], pa.binary()),
    }, schema=REJECTED_SCHEMA)
    good = np.ones(n, dtype=bool)
    good[bad] = False
    mask = pa.array(good)
    docs = pa.table([ids.filter(mask), text.filter(mask), source.filter(mask), metadata.filter(mask)],
                    schema=JSONL_SCHEMA)
    return docs, rejected


def arrow_rows(lines: Sequence[bytes], first_line: int,
               fields: FieldMapping) -> tuple[pa.Table, pa.Array, np.ndarray, list[bytes]] | None:
    """(mapped fields as strings, the metadata column, each row's line number, each row's
    raw line), or None when Arrow cannot give exactly what the per-line path would see."""
    if first_line == 0 and lines and lines[0].startswith(BOM):
        lines = [lines[0][len(BOM):], *lines[1:]]  # a byte-order mark starts the file, not the record
    numbers = [i for i, raw in enumerate(lines) if raw and not raw.isspace()]  # blank lines are separators
    if not numbers:
        return None
    raws = [lines[i] for i in numbers]
    # Only objects: a record that is not one is the per-line path's to reject (and a batch
    # starting with a bare ``null`` crashes pyarrow 26's reader).
    if not all(raw.lstrip().startswith(b"{") and raw.rstrip().endswith(b"}") for raw in raws):
        return None
    # Arrow's reader recurses once per level of a nested value, inferring its type slowly (a
    # line nested 5,000 deep takes seconds, 100,000 deep crashes the process); a nested
    # value never stays on this path anyway, so a line with many brackets is checked for one.
    if any(raw.count(b"[") + raw.count(b"{") > _ARROW_BRACKETS and _nested(raw) for raw in raws):
        return None
    block = b"".join(raws)
    if not block.endswith(b"\n"):
        block += b"\n"
    if not _is_utf8(block):  # Arrow's JSON reader does not check that strings are UTF-8
        return None
    names = dict.fromkeys(f for f in (fields.text_field, fields.id_field, fields.source_field) if f)
    schema = pa.schema([(name, pa.string()) for name in names])
    try:
        table = pj.read_json(pa.BufferReader(block),
                             read_options=pj.ReadOptions(use_threads=False, block_size=len(block) + 1),
                             parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if table.num_rows != len(numbers):  # e.g. two objects on one line, which json.loads refuses
        return None
    extra = sorted(c for c in table.column_names if c not in names)
    if any(table[c].type != pa.string() or table[c].null_count for c in extra):
        return None
    if extra:  # as the per-line path writes the fields outside the mapping
        values = zip(*(table[c].to_pylist() for c in extra))
        metadata = pa.array([json.dumps(dict(zip(extra, v)), ensure_ascii=False, sort_keys=True) for v in values],
                            pa.string())
    else:
        metadata = pa.nulls(table.num_rows, pa.string())
    return table.select(list(names)), metadata, np.asarray(numbers, dtype=np.int64) + first_line, raws


def _nested(raw: bytes) -> bool:
    """Whether the line holds a nested value, or is not a JSON object Python can load
    (Python's parser fails cleanly where Arrow's would not)."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return True
    return not isinstance(record, dict) or any(isinstance(v, (dict, list)) for v in record.values())


def _is_utf8(block: bytes) -> bool:
    """Whether ``block`` is valid UTF-8, by Arrow's validation of a binary-to-string cast:
    the same verdict as ``bytes.decode("utf-8")``, faster (surrogates, overlong forms and
    code points past U+10FFFF are refused; the tests compare the two)."""
    size = np.array([0, len(block)], dtype=np.int64)
    value = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(size), pa.py_buffer(block)])
    try:
        value.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _ids(table: pa.Table, fields: FieldMapping, uri: str, numbers: np.ndarray) -> pa.Array:
    given = table[fields.id_field].combine_chunks() if fields.id_field else pa.nulls(table.num_rows, pa.string())
    missing = np.flatnonzero(pc.is_null(given).to_numpy(zero_copy_only=False))
    if not missing.size:
        return given
    derived = pa.array([derived_id(uri, int(numbers[i])) for i in missing], pa.string())
    return pc.replace_with_mask(given, pc.is_null(given), derived)


def _text_problems(text: pa.Array, fields: FieldMapping) -> np.ndarray:
    """Each row's read problem ("" for none), in ``_text_problem``'s order of checks."""
    reasons = np.full(len(text), "", dtype=object)
    missing = pc.is_null(text).to_numpy(zero_copy_only=False)
    too_large = pc.fill_null(pc.greater(pc.binary_length(text), fields.max_text_bytes), False)
    reasons[too_large.to_numpy(zero_copy_only=False)] = "text_too_large"
    # Python's str.strip decides blankness; it only needs asking where no ASCII letter or
    # digit shows the text is not blank.
    maybe_blank = pc.invert(pc.fill_null(pc.match_substring_regex(text, "[0-9A-Za-z]"), True))
    rows = np.flatnonzero(maybe_blank.to_numpy(zero_copy_only=False))
    for i, value in zip(rows, text.take(pa.array(rows, pa.int64())).to_pylist()):
        if not value.strip():
            reasons[i] = "empty_text"
    reasons[missing] = "missing_text"
    return reasons
