"""Unit tests of columnar input (Parquet tables) made into document tables (operators/io/records.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from operators.base import DROP_REASON
from operators.io.records import REJECTED_SCHEMA, FieldMapping, derived_id, normalize_table
from tests.support.record_parsing import FIELDS, URI, parse

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
