"""Unit tests of reading raw JSON lines into document tables (operators/io/records.py)."""

from __future__ import annotations

import decimal
import inspect
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.base import DROP_REASON
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
    parse_jsonl_lines,
)
from tests.support.record_parsing import FIELDS, URI, parse, reject_one

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
