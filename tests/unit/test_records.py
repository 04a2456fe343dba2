"""Unit tests of reading raw records into document tables (operators/io/records.py)."""

from __future__ import annotations

import decimal
import inspect
import json
import sys

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.base import DROP_REASON
from operators.io.jsonl_block import parse_jsonl_batch
from operators.io.records import (
    JSONL_SCHEMA,
    MAX_NESTING,
    METADATA,
    REJECTED_SCHEMA,
    FieldMapping,
    corrupt_file_row,
    derived_id,
    json_depth,
    json_text,
    normalize_table,
    parse_jsonl_lines,
)

URI = "/data/in/part-0.jsonl"
FIELDS = FieldMapping()


def parse(*lines: bytes | str, first_line: int = 0,
          fields: FieldMapping = FIELDS) -> tuple[list[dict], list[dict]]:
    """Documents and rejected rows of ``lines`` as lists of row dicts."""
    raw = [line.encode() if isinstance(line, str) else line for line in lines]
    docs, rejected = parse_jsonl_lines(raw, URI, first_line, fields)
    # the Arrow batch path must give exactly the same tables (or fall back to this path)
    fast_docs, fast_rejected = parse_jsonl_batch(raw, URI, first_line, fields)
    assert fast_docs.equals(docs) and fast_rejected.equals(rejected)
    assert docs.schema == JSONL_SCHEMA
    assert rejected.schema == REJECTED_SCHEMA
    return docs.to_pylist(), rejected.to_pylist()


def reject_one(line: bytes | str, fields: FieldMapping = FIELDS) -> dict:
    """The single rejected row of ``line``, asserting no document came out."""
    docs, rejected = parse(line, fields=fields)
    assert docs == []
    assert len(rejected) == 1
    return rejected[0]


# --- drop reasons ---------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b'{"text": "a"', b"not json at all", b'{"text": "a"} trailing'])
def test_malformed_json(line: bytes) -> None:
    row = reject_one(line)
    assert row[DROP_REASON] == "read:malformed_json"
    assert row["raw"] == line
    assert row["input_uri"] == URI
    assert row["id"] == derived_id(URI, 0)
    assert row["text"] is None


def _nested(depth: int, field: str = "meta") -> bytes:
    """A line whose ``field`` is a list nested ``depth`` deep (the line: one more)."""
    return b'{"id": "d", "text": "fine", "' + field.encode() + b'": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [MAX_NESTING, 5_000, 100_000])
def test_a_line_nested_deeper_than_the_limit_is_malformed_json(depth: int) -> None:
    line = _nested(depth)  # 5,000 deep: json.loads' RecursionError; 100,000: Arrow crashed the process
    row = reject_one(line)
    assert (row[DROP_REASON], row["raw"], row["id"]) == ("read:malformed_json", line, derived_id(URI, 0))


def test_a_line_nested_to_the_limit_is_a_document() -> None:
    docs, rejected = parse(_nested(MAX_NESTING - 1))
    assert rejected == [] and docs[0]["id"] == "d"
    assert json.loads(docs[0][METADATA]) == {"meta": json.loads(b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1))}


@pytest.mark.parametrize("field", ["id", "source", "text"])
def test_a_deep_value_in_a_mapped_field_is_malformed_json(field: str) -> None:
    line = b'{"' + field.encode() + b'": ' + b"[" * 600 + b"]" * 600 + b', "x": "y"}'
    assert reject_one(line)[DROP_REASON] == "read:malformed_json"


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = '[{"' * 2000 + "\\" + '"}]' * 2000  # escapes included
    docs, rejected = parse(json.dumps({"id": "code", "text": text}))
    assert rejected == [] and docs[0]["text"] == text


def test_json_depth_counts_levels_without_recursion() -> None:
    assert [json_depth(v) for v in ("x", 1, [], {}, [[]], {"a": [1, {"b": []}]})] == [0, 0, 1, 1, 2, 4]
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_001


def test_a_python_recursion_error_rejects_the_line_and_never_stops_the_read() -> None:
    # json.loads fails within MAX_NESTING only on a deep stack: make one
    line = _nested(MAX_NESTING - 10)

    def at_depth(n: int) -> tuple[list[dict], list[dict]]:
        return at_depth(n - 1) if n else parse(line)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        docs, rejected = at_depth(1000 - 200 - len(inspect.stack()))
    finally:
        sys.setrecursionlimit(limit)
    assert docs == [] and [r[DROP_REASON] for r in rejected] == ["read:malformed_json"]


@pytest.mark.parametrize("value", ["1" * 5000, "-" + "9" * 4301])
def test_an_integer_python_will_not_convert_is_malformed_json(value: str) -> None:
    for line in (f'{{"id": "d", "text": "t", "n": {value}}}', f'{{"id": {value}, "text": "t"}}'):
        row = reject_one(line)
        assert row[DROP_REASON] == "read:malformed_json" and row["raw"] == line.encode()


def test_numbers_past_float_range_are_kept_as_written() -> None:
    # 1e999999 is valid JSON; Python reads it as infinity: metadata keeps the text (it wrote
    # the invalid token -Infinity until issue 21), an id is Python's str of it as before
    big = "4" + "0" * 4299  # 4,300 digits: the most Python converts
    docs, rejected = parse(f'{{"id": 1e999999, "text": "t", "n": -1e999999, "m": {big}}}')
    assert rejected == []
    assert docs[0]["id"] == "inf"
    assert docs[0][METADATA] == f'{{"m": {big}, "n": -1e999999}}'
    row = reject_one('{"text": 1e999999}')
    assert row[DROP_REASON] == "read:non_string_text"


@pytest.mark.parametrize("number", ["1e400", "-1E-400", "0.1000000000000000055511151231257827021181583404541015625",
                                    "1.50", "1e5", "0.0e0", "-0.0", "0.25", "12345678901234567890.5", "-0"])
def test_metadata_numbers_are_exact(number: str) -> None:
    docs, _ = parse(f'{{"id": "d", "text": "t", "x": {number}, "y": [{number}, {{"z": {number}}}]}}')
    meta = docs[0][METADATA]
    exact = json.loads(meta, parse_float=decimal.Decimal, parse_int=decimal.Decimal, parse_constant=_refuse)
    assert exact == {"x": decimal.Decimal(number), "y": [decimal.Decimal(number), {"z": decimal.Decimal(number)}]}
    if number != "-0":  # an integer is Python's int: -0 is 0, the same number
        assert meta == f'{{"x": {number}, "y": [{number}, {{"z": {number}}}]}}'


def test_metadata_is_json_even_for_the_constants_python_accepts() -> None:
    # NaN and Infinity are not JSON; Python reads them (and its json.dumps writes them), so a
    # line holding one is a document, the constant kept as a string
    docs, rejected = parse('{"id": "d", "text": "t", "a": NaN, "b": [Infinity, -Infinity], "c": 1.5}')
    assert rejected == []
    meta = docs[0][METADATA]
    assert meta == '{"a": "NaN", "b": ["Infinity", "-Infinity"], "c": 1.5}'
    json.loads(meta, parse_constant=_refuse)


def test_metadata_written_exactly_is_what_json_dumps_writes_otherwise() -> None:
    # a line with one exact number goes through json_text; everything else in it must come
    # out as json.dumps(..., ensure_ascii=False, sort_keys=True) writes it
    record = {"b": ["\u00e9\n\"\\\x01", None, True, False, {}, [], {"z": 1, "a": [2, 3.5]}], "a": -7,
              "": "", "\u2028": 0.125, "k" * 3: {"x": {"y": {"z": []}}}}
    line = json.dumps({"id": "d", "text": "t", **record, "exact": 1}).replace('"exact": 1', '"exact": 1e400')
    docs, _ = parse(line)
    expected = json.dumps({**record, "exact": 0}, ensure_ascii=False, sort_keys=True)
    assert docs[0][METADATA] == expected.replace('"exact": 0', '"exact": 1e400')
    assert json_text(record) == json.dumps(record, ensure_ascii=False, sort_keys=True)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_JSON_VALUES)
def test_json_text_writes_what_json_dumps_writes(value: object) -> None:
    assert json_text(value) == json.dumps(value, ensure_ascii=False, sort_keys=True)


def test_json_text_does_not_recurse() -> None:
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_text(deep) == "[" * 100_001 + "]" * 100_001


def _refuse(token: str) -> None:
    raise ValueError(f"not JSON: {token}")


def test_corrupt_file_row() -> None:
    table = corrupt_file_row(URI, 1234)
    assert table.schema == REJECTED_SCHEMA
    assert table.to_pylist() == [{"id": derived_id(URI, 1234), "text": None, "source": None,
                                  DROP_REASON: "read:corrupt_file", "input_uri": URI, "input_line": 1234,
                                  "raw": None}]


@pytest.mark.parametrize("line", [b'["text", "a"]', b'"just a string"', b"42", b"null"])
def test_valid_json_that_is_not_an_object_is_malformed(line: bytes) -> None:
    row = reject_one(line)
    assert row[DROP_REASON] == "read:malformed_json"
    assert row["raw"] == line


def test_invalid_utf8_bytes() -> None:
    line = b'{"text": "caf\xe9"}'  # Latin-1 e-acute: not UTF-8
    row = reject_one(line)
    assert row[DROP_REASON] == "read:invalid_utf8"
    assert row["raw"] == line
    assert row["id"] == derived_id(URI, 0)


def test_lone_surrogate_escape_in_text_is_invalid_utf8() -> None:
    line = b'{"id": "d1", "text": "broken \\ud800 here", "source": "web"}'
    row = reject_one(line)
    assert row[DROP_REASON] == "read:invalid_utf8"
    assert row["id"] == "d1"
    assert row["source"] == "web"
    assert row["text"] is None  # the text cannot be stored as UTF-8 ...
    assert row["raw"] == line  # ... so the raw bytes keep it


def test_surrogate_pair_escape_is_valid_text() -> None:
    docs, rejected = parse(b'{"text": "smile \\ud83d\\ude00"}')
    assert rejected == []
    assert docs[0]["text"] == "smile \U0001F600"


@pytest.mark.parametrize("line", [
    b'{"text": "ok", "title": "bad \\udc80"}',
    b'{"text": "ok", "id": "\\ud800"}',
    b'{"text": 5, "source": "\\ud800"}',
])
def test_lone_surrogate_escape_outside_text_is_invalid_utf8(line: bytes) -> None:
    docs, rejected = parse(b'{"text": "fine"}', line)
    assert [d["text"] for d in docs] == ["fine"]
    assert [(r[DROP_REASON], r["input_line"], r["raw"]) for r in rejected] == [
        ("read:invalid_utf8", 1, line)]


@pytest.mark.parametrize("line", [b'{"id": "x"}', b'{"text": null, "id": "x"}'])
def test_missing_text(line: bytes) -> None:
    row = reject_one(line)
    assert row[DROP_REASON] == "read:missing_text"
    assert row["id"] == "x"
    assert row["raw"] == line


@pytest.mark.parametrize("value", ["42", "1.5", "true", '["a"]', '{"a": "b"}'])
def test_non_string_text(value: str) -> None:
    line = f'{{"text": {value}}}'.encode()
    row = reject_one(line)
    assert row[DROP_REASON] == "read:non_string_text"
    assert row["text"] is None
    assert row["raw"] == line


@pytest.mark.parametrize("text", ["", " ", "  \t\n  ", "\u00a0\u3000"])
def test_empty_or_whitespace_only_text(text: str) -> None:
    row = reject_one(json.dumps({"text": text, "source": "s"}))
    assert row[DROP_REASON] == "read:empty_text"
    assert row["text"] == text  # text is storable, so it is kept instead of the raw bytes
    assert row["raw"] is None
    assert row["source"] == "s"


def test_text_too_large_counts_utf8_bytes_at_the_boundary() -> None:
    fields = FieldMapping(max_text_bytes=6)
    at_limit = "\u00e9\u00e9\u00e9"  # 3 characters, 6 UTF-8 bytes
    over = "\u00e9\u00e9\u00e9a"  # 4 characters, 7 UTF-8 bytes
    docs, rejected = parse(json.dumps({"text": at_limit}), json.dumps({"text": over}),
                           fields=fields)
    assert [d["text"] for d in docs] == [at_limit]
    assert len(rejected) == 1
    assert rejected[0][DROP_REASON] == "read:text_too_large"
    assert rejected[0]["text"] == over
    assert rejected[0]["raw"] is None
    assert rejected[0]["input_line"] == 1


def test_all_rows_dropped_gives_empty_documents_with_schema() -> None:
    docs, rejected = parse_jsonl_lines([b"{", b'{"text": ""}'], URI, 0, FIELDS)
    assert docs.num_rows == 0
    assert docs.schema == JSONL_SCHEMA
    assert rejected.num_rows == 2


def test_no_lines() -> None:
    docs, rejected = parse_jsonl_lines([], URI, 0, FIELDS)
    assert (docs.num_rows, rejected.num_rows) == (0, 0)


# --- layout, ids, sources, metadata -------------------------------------------------------


def test_blank_lines_are_skipped_without_a_record() -> None:
    docs, rejected = parse(b"\n", b'{"text": "a"}\n', b"   \r\n", b"", b'{"text": "b"}')
    assert [d["text"] for d in docs] == ["a", "b"]
    assert rejected == []
    # positions still count the blank lines
    assert [d["id"] for d in docs] == [derived_id(URI, 1), derived_id(URI, 4)]


def test_trailing_newlines_are_accepted() -> None:
    docs, _ = parse(b'{"text": "a"}\n', b'{"text": "b"}\r\n')
    assert [d["text"] for d in docs] == ["a", "b"]


def test_derived_ids_are_stable_and_distinct_per_line() -> None:
    lines = [b'{"text": "same"}'] * 3
    first, _ = parse(*lines)
    again, _ = parse(*lines)
    ids = [d["id"] for d in first]
    assert ids == [d["id"] for d in again]
    assert len(set(ids)) == 3
    assert ids == [derived_id(URI, n) for n in range(3)]
    other_file, _ = parse_jsonl_lines(lines, URI + ".2", 0, FIELDS)
    assert set(other_file["id"].to_pylist()).isdisjoint(ids)


def test_derived_ids_follow_the_line_number_with_first_line_offset() -> None:
    docs, _ = parse(b'{"text": "a"}', b'{"text": "b"}', first_line=100)
    assert [d["id"] for d in docs] == [derived_id(URI, 100), derived_id(URI, 101)]
    # the same row parsed in a differently split batch gets the same id
    alone, _ = parse(b'{"text": "b"}', first_line=101)
    assert alone[0]["id"] == docs[1]["id"]


def test_id_field_is_cast_to_string() -> None:
    docs, _ = parse(b'{"id": 17, "text": "a"}', b'{"id": "x-1", "text": "b"}',
                    b'{"id": null, "text": "c"}')
    assert [d["id"] for d in docs] == ["17", "x-1", derived_id(URI, 2)]


def test_custom_id_field_and_no_id_field() -> None:
    docs, _ = parse(b'{"doc": 9, "id": "ignored", "text": "a"}', fields=FieldMapping(id_field="doc"))
    assert docs[0]["id"] == "9"
    assert json.loads(docs[0][METADATA]) == {"id": "ignored"}
    docs, _ = parse(b'{"id": "kept-as-metadata", "text": "a"}', fields=FieldMapping(id_field=None))
    assert docs[0]["id"] == derived_id(URI, 0)
    assert json.loads(docs[0][METADATA]) == {"id": "kept-as-metadata"}


def test_source_from_field_constant_or_default() -> None:
    lines = (b'{"text": "a", "source": "wiki"}', b'{"text": "b"}', b'{"text": "c", "source": 3}')
    docs, _ = parse(*lines)
    assert [d["source"] for d in docs] == ["wiki", "unknown", "3"]
    docs, _ = parse(*lines, fields=FieldMapping(source="books"))
    assert [d["source"] for d in docs] == ["books"] * 3
    docs, _ = parse(*lines, fields=FieldMapping(default_source="misc"))
    assert [d["source"] for d in docs] == ["wiki", "misc", "3"]


def test_custom_text_field() -> None:
    docs, _ = parse(b'{"content": "body", "text": "other"}', fields=FieldMapping(text_field="content"))
    assert docs[0]["text"] == "body"
    assert json.loads(docs[0][METADATA]) == {"text": "other"}


def test_metadata_holds_the_other_fields_losslessly() -> None:
    record = {
        "id": "d1", "text": "hello", "source": "web",
        "url": "https://example.org/\u00e9", "score": 0.25, "n": 12345678901234567,
        "tags": ["a", "b"], "nested": {"k": [1, None, True]}, "empty": None,
    }
    docs, rejected = parse(json.dumps(record))
    assert rejected == []
    (doc,) = docs
    assert (doc["id"], doc["text"], doc["source"]) == ("d1", "hello", "web")
    meta = json.loads(doc[METADATA])
    assert meta == {k: v for k, v in record.items() if k not in ("id", "text", "source")}
    assert "\u00e9" in doc[METADATA]  # kept as UTF-8, not \u-escaped


def test_metadata_is_null_without_other_fields() -> None:
    docs, _ = parse(b'{"id": "a", "text": "x", "source": "s"}', b'{"text": "y"}')
    assert [d[METADATA] for d in docs] == [None, None]


def test_rejected_rows_carry_provenance() -> None:
    lines = [b'{"text": "ok"}', b"{bad", b"", b'{"text": 1}', b'{"text": "   "}']
    docs, rejected = parse(*lines, first_line=40)
    assert [d["text"] for d in docs] == ["ok"]
    assert [(r[DROP_REASON], r["input_line"]) for r in rejected] == [
        ("read:malformed_json", 41), ("read:non_string_text", 43), ("read:empty_text", 44)]
    assert {r["input_uri"] for r in rejected} == {URI}
    assert rejected[0]["raw"] == b"{bad"
    assert rejected[1]["raw"] == b'{"text": 1}'


# --- normalize_table (columnar input) ---------------------------------------------------------


def normalize(table: pa.Table, first_row: int = 0,
              fields: FieldMapping = FIELDS) -> tuple[pa.Table, pa.Table]:
    docs, rejected = normalize_table(table, URI, first_row, fields)
    assert rejected.schema == REJECTED_SCHEMA
    return docs, rejected


def test_normalize_passes_extra_columns_through() -> None:
    table = pa.table({
        "id": ["a", "b"], "text": ["x", "y"], "source": ["s1", "s2"],
        "lang": ["en", "de"], "score": pa.array([0.5, 0.25], pa.float32()),
    })
    docs, rejected = normalize(table)
    assert rejected.num_rows == 0
    assert docs.column_names == ["id", "text", "source", "lang", "score"]
    assert docs["score"].type == pa.float32()
    assert docs.to_pydict() == table.to_pydict()


def test_normalize_binary_text_with_invalid_utf8_row() -> None:
    table = pa.table({
        "text": pa.array([b"good", b"bad \xff\xfe", None, b" \t "], pa.binary()),
        "n": [1, 2, 3, 4],
    })
    docs, rejected = normalize(table, first_row=10)
    assert docs["text"].type == pa.string()
    assert docs.to_pydict() == {"id": [derived_id(URI, 10)], "text": ["good"],
                                "source": ["unknown"], "n": [1]}
    assert rejected[DROP_REASON].to_pylist() == [
        "read:invalid_utf8", "read:missing_text", "read:empty_text"]
    assert rejected["input_line"].to_pylist() == [11, 12, 13]
    assert rejected["id"].to_pylist() == [derived_id(URI, n) for n in (11, 12, 13)]
    assert set(rejected["input_uri"].to_pylist()) == {URI}


def test_normalize_large_string_and_large_binary_text() -> None:
    for type_ in (pa.large_string(), pa.large_binary()):
        raw = ["a", "b"] if type_ == pa.large_string() else [b"a", b"b"]
        docs, rejected = normalize(pa.table({"text": pa.array(raw, type_)}))
        assert docs["text"].to_pylist() == ["a", "b"]
        assert rejected.num_rows == 0


def test_normalize_non_string_text_column() -> None:
    docs, rejected = normalize(pa.table({"id": [1, 2], "text": pa.array([7, None], pa.int64())}))
    assert docs.num_rows == 0
    assert rejected[DROP_REASON].to_pylist() == ["read:non_string_text", "read:missing_text"]
    assert rejected["id"].to_pylist() == ["1", "2"]


def test_normalize_missing_text_column() -> None:
    docs, rejected = normalize(pa.table({"body": ["x", "y"]}), first_row=5)
    assert docs.num_rows == 0
    assert rejected[DROP_REASON].to_pylist() == ["read:missing_text"] * 2
    assert rejected["input_line"].to_pylist() == [5, 6]


def test_normalize_null_empty_and_too_large_text() -> None:
    table = pa.table({"text": ["ok", None, "", "   ", "\u00e9\u00e9\u00e9", "\u00e9\u00e9\u00e9a"]})
    docs, rejected = normalize(table, fields=FieldMapping(max_text_bytes=6))
    assert docs["text"].to_pylist() == ["ok", "\u00e9\u00e9\u00e9"]
    assert rejected[DROP_REASON].to_pylist() == [
        "read:missing_text", "read:empty_text", "read:empty_text", "read:text_too_large"]
    assert rejected["text"].to_pylist() == [None, "", "   ", "\u00e9\u00e9\u00e9a"]


def test_normalize_ids_derived_when_column_absent_or_null() -> None:
    docs, _ = normalize(pa.table({"text": ["a", "b"]}), first_row=3)
    assert docs["id"].to_pylist() == [derived_id(URI, 3), derived_id(URI, 4)]
    docs, _ = normalize(pa.table({"id": pa.array([10, None], pa.int64()), "text": ["a", "b"]}),
                        first_row=3)
    assert docs["id"].to_pylist() == ["10", derived_id(URI, 4)]
    assert docs["id"].type == pa.string()


def test_normalize_ids_match_jsonl_derivation() -> None:
    """A row without an id gets the same id whichever reader produced it."""
    docs, _ = normalize(pa.table({"text": ["a"]}), first_row=7)
    jsonl, _ = parse(b'{"text": "a"}', first_line=7)
    assert docs["id"].to_pylist() == [jsonl[0]["id"]]


def test_normalize_source_field_constant_and_default() -> None:
    table = pa.table({"text": ["a", "b"], "source": ["wiki", None]})
    docs, _ = normalize(table)
    assert docs["source"].to_pylist() == ["wiki", "unknown"]
    docs, _ = normalize(table, fields=FieldMapping(source="books"))
    assert docs["source"].to_pylist() == ["books", "books"]
    docs, _ = normalize(pa.table({"text": ["a"]}), fields=FieldMapping(default_source="misc"))
    assert docs["source"].to_pylist() == ["misc"]


def test_normalize_custom_field_names() -> None:
    table = pa.table({"doc_id": [5], "body": ["x"], "origin": ["o"], "extra": [True]})
    fields = FieldMapping(text_field="body", id_field="doc_id", source_field="origin")
    docs, rejected = normalize(table, fields=fields)
    assert rejected.num_rows == 0
    assert docs.to_pydict() == {"id": ["5"], "text": ["x"], "source": ["o"], "extra": [True]}


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string(), pa.binary()])
def test_normalize_empty_table(type_: pa.DataType) -> None:
    docs, rejected = normalize(pa.table({"text": pa.array([], type_)}))
    assert (docs.num_rows, rejected.num_rows) == (0, 0)
    assert docs.column_names == ["id", "text", "source"]


def test_normalize_empty_table_without_text_column() -> None:
    docs, rejected = normalize(pa.table({"x": pa.array([], pa.int64())}))
    assert (docs.num_rows, rejected.num_rows) == (0, 0)
    assert docs.column_names == ["id", "text", "source", "x"]


def test_normalize_all_rows_dropped() -> None:
    docs, rejected = normalize(pa.table({"text": pa.array([None, ""], pa.string()), "k": [1, 2]}))
    assert docs.num_rows == 0
    assert docs.column_names == ["id", "text", "source", "k"]
    assert rejected[DROP_REASON].to_pylist() == ["read:missing_text", "read:empty_text"]


def test_byte_order_mark_on_the_first_line_is_not_part_of_the_record() -> None:
    lines = [b'\xef\xbb\xbf{"id": "a", "text": "first"}\n', b'{"id": "b", "text": "second"}\n']
    docs, rejected = parse_jsonl_lines(lines, "file.jsonl", 0, FIELDS)
    assert docs["id"].to_pylist() == ["a", "b"] and rejected.num_rows == 0


def test_a_first_line_that_is_only_a_byte_order_mark_is_blank() -> None:
    # it was read:malformed_json: the blank check came before the mark was dropped
    for first in (b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"\xef\xbb\xbf \t\r\n"):
        docs, rejected = parse(first, b'{"text": "after"}\n')
        assert rejected == [] and [d["id"] for d in docs] == [derived_id(URI, 1)]
    # past the file's first line a mark is data, as before
    for lines, first_line in (([b'{"text": "a"}', b"\xef\xbb\xbf"], 0), ([b"\xef\xbb\xbf"], 5)):
        docs, rejected = parse(*lines, first_line=first_line)
        assert [r[DROP_REASON] for r in rejected] == ["read:malformed_json"]


# --- ids and sources that are not strings: one rule for JSONL and Parquet ---------------------


def test_non_string_ids_and_sources_are_text_by_one_rule() -> None:
    docs, rejected = parse(b'{"id": [1, "a"], "text": "a", "source": {"b": 1, "a": [true]}}',
                           b'{"id": true, "text": "b", "source": false}',
                           b'{"id": {}, "text": "c", "source": 2.5}')
    assert rejected == []
    assert [d["id"] for d in docs] == ['[1, "a"]', "true", "{}"]
    assert [d["source"] for d in docs] == ['{"a": [true], "b": 1}', "false", "2.5"]
    # Parquet: the same text for the same values, maps as [key, value] pairs
    table = pa.table({
        "id": pa.array([[1, 2], None], pa.list_(pa.int64())),
        "text": ["a", "b"],
        "source": pa.array([{"b": 1, "a": "x"}, None], pa.struct([("b", pa.int64()), ("a", pa.string())])),
        "m": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
    })
    pdocs, prejected = normalize(table, first_row=4)
    assert prejected.num_rows == 0
    assert pdocs["id"].to_pylist() == ["[1, 2]", derived_id(URI, 5)]
    assert pdocs["source"].to_pylist() == ['{"a": "x", "b": 1}', "unknown"]
    docs, _ = normalize(pa.table({"id": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())), "text": ["a"]}))
    assert docs["id"].to_pylist() == ['[["k", 1]]']
    docs, _ = normalize(pa.table({"id": [True, False], "text": ["a", "b"]}))
    assert docs["id"].to_pylist() == ["true", "false"]
    jsonl, _ = parse(b'{"id": [1, 2], "text": "a"}')
    assert jsonl[0]["id"] == "[1, 2]"


def test_normalize_binary_ids_and_sources_that_are_not_utf8_reject_their_rows() -> None:
    # the read stopped with an Arrow error naming no file
    table = pa.table({"id": pa.array([b"\xff\xfe", b"ok-1", None, b"ok-3"], pa.binary()),
                      "text": ["a", "b", "c", "d"],
                      "source": pa.array([b"web", b"web", b"\xc0\xaf", None], pa.large_binary())})
    docs, rejected = normalize(table, first_row=10)
    assert docs["id"].to_pylist() == ["ok-1", "ok-3"]
    assert docs["source"].to_pylist() == ["web", "unknown"]
    assert rejected[DROP_REASON].to_pylist() == ["read:invalid_utf8"] * 2
    assert rejected["input_line"].to_pylist() == [10, 12]
    assert rejected["id"].to_pylist() == [derived_id(URI, 10), derived_id(URI, 12)]
    # invalid bytes in the id win over a text problem, as for a JSON line
    docs, rejected = normalize(pa.table({"id": pa.array([b"\xff"], pa.binary()), "text": [""]}))
    assert rejected[DROP_REASON].to_pylist() == ["read:invalid_utf8"]


def test_normalize_ids_of_other_types() -> None:
    table = pa.table({"id": pa.array(["x", "y", None], pa.string()).dictionary_encode(), "text": ["a", "b", "c"]})
    docs, _ = normalize(table)
    assert docs["id"].to_pylist() == ["x", "y", derived_id(URI, 2)]
    for id_type, values, expected in ((pa.float64(), [1.5], ["1.5"]), (pa.string_view(), ["v"], ["v"]),
                                      (pa.binary(2), [b"ab"], ["ab"]), (pa.null(), [None], [derived_id(URI, 0)]),
                                      (pa.duration("s"), [3], ["3"]),
                                      (pa.month_day_nano_interval(), [pa.MonthDayNano([1, 2, 3])],
                                       ["[1, 2, 3]"])):  # no Arrow cast: a tuple in Python
        docs, rejected = normalize(pa.table({"id": pa.array(values, id_type), "text": ["a"]}))
        assert docs["id"].to_pylist() == expected and rejected.num_rows == 0, id_type


# --- normalize_table: text types, reserved column names -------------------------------------------


@pytest.mark.parametrize("type_", [pa.string_view(), pa.dictionary(pa.int32(), pa.string()),
                                   pa.dictionary(pa.int8(), pa.large_string()), pa.binary_view(),
                                   pa.dictionary(pa.int32(), pa.binary())])
def test_normalize_other_string_types_are_text(type_: pa.DataType) -> None:
    # string_view and dictionary<string> were read:non_string_text on every row
    values = ["a", None, " ", "a"]
    value_type = type_.value_type if pa.types.is_dictionary(type_) else type_
    raw = [v.encode() if v is not None and "binary" in str(value_type) else v for v in values]
    array = pa.array(raw, value_type)
    column = pa.chunked_array([array.dictionary_encode().cast(type_) if pa.types.is_dictionary(type_) else array])
    docs, rejected = normalize(pa.table({"text": column}))
    assert docs["text"].type == pa.string()
    assert docs["text"].to_pylist() == ["a", "a"]
    assert rejected[DROP_REASON].to_pylist() == ["read:missing_text", "read:empty_text"]


def test_normalize_dictionary_text_in_chunks_with_different_dictionaries() -> None:
    chunks = [pa.array(["x", "y"]).dictionary_encode(), pa.array(["z", b"\xff".decode("latin-1")]).dictionary_encode()]
    docs, rejected = normalize(pa.table({"text": pa.chunked_array(chunks)}))
    assert docs["text"].to_pylist() == ["x", "y", "z", "\u00ff"] and rejected.num_rows == 0


def test_normalize_dictionary_of_non_strings_is_non_string_text() -> None:
    docs, rejected = normalize(pa.table({"text": pa.array([1, None]).dictionary_encode()}))
    assert docs.num_rows == 0
    assert rejected[DROP_REASON].to_pylist() == ["read:non_string_text", "read:missing_text"]


def test_normalize_renames_columns_named_like_tamis_own() -> None:
    # a rejected/ file read back: its rows were rejected again under their old reasons
    table = pa.table({"id": ["a", "b"], "text": ["x", "y"], DROP_REASON: [None, "dedup:exact"],
                      "_tamis_file": ["f", "f"], "_tamis_row": [1, 2], "input__tamis_row": [3, 4],
                      "lang": ["en", "de"]})
    docs, rejected = normalize(table)
    assert rejected.num_rows == 0
    assert docs.column_names == ["id", "text", "source", "input_drop_reason", "input__tamis_file",
                                 "input_input__tamis_row", "input__tamis_row", "lang"]
    assert docs["input_drop_reason"].to_pylist() == [None, "dedup:exact"]
    assert docs["input_input__tamis_row"].to_pylist() == [1, 2]
    assert docs["input__tamis_row"].to_pylist() == [3, 4]


def test_reserved_names_cover_the_columns_jobs_adds() -> None:
    from jobs.part_reader import ROW_COLUMN
    from jobs.parts import INTERNAL_COLUMNS
    from operators.base import FILE_COLUMN
    from operators.io.records import INTERNAL_PREFIX

    for name in (ROW_COLUMN, FILE_COLUMN, *INTERNAL_COLUMNS):
        assert name == DROP_REASON or name.startswith(INTERNAL_PREFIX), name
