"""Unit tests of the pass-through columns of Parquet input (jobs/parquet_columns.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.parquet_columns import PassThrough, conform_columns, pass_through_columns
from jobs.store import S3Options
from operators.io.records import FieldMapping

FIELDS = FieldMapping()


def write(tmp_path: Path, name: str, **columns: pa.Array) -> str:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path)
    return str(path)


def test_union_of_columns_in_first_seen_order_with_one_type_each(tmp_path: Path) -> None:
    a = write(tmp_path, "a.parquet", id=pa.array(["1"]), text=pa.array(["x"]), lang=pa.array(["en"]),
              n=pa.array([1], pa.int32()))
    b = write(tmp_path, "b.parquet", text=pa.array(["y"]), score=pa.array([0.5]), n=pa.array([2], pa.int64()),
              lang=pa.array([3]))
    c = write(tmp_path, "c.parquet", text=pa.array(["z"]), lang=pa.array([["en", "fr"]]), tags=pa.array([None]))
    columns = pass_through_columns([a, b, c], FIELDS, S3Options())
    assert columns.schema == pa.schema([("lang", pa.string()), ("n", pa.int64()), ("score", pa.float64()),
                                        ("tags", pa.null())])
    assert columns.as_text == {"lang"}
    tables = [conform_columns(pq.read_table(p), columns, FIELDS, p) for p in (a, b, c)]
    assert [t.column_names for t in tables] == [["id", "text", "lang", "n", "score", "tags"],
                                                ["text", "lang", "n", "score", "tags"],
                                                ["text", "lang", "n", "score", "tags"]]
    assert [t["lang"][0].as_py() for t in tables] == ["en", "3", '["en", "fr"]']
    assert [t["n"][0].as_py() for t in tables] == [1, 2, None]
    assert [t["score"][0].as_py() for t in tables] == [None, 0.5, None]
    assert all(t.select(["lang", "n", "score", "tags"]).schema == columns.schema for t in tables)


def test_files_without_the_text_column_or_a_readable_footer_take_no_part(tmp_path: Path) -> None:
    good = write(tmp_path, "a.parquet", text=pa.array(["x"]), lang=pa.array(["en"]))
    no_text = write(tmp_path, "b.parquet", body=pa.array(["y"]), lang=pa.array([1]))
    broken = tmp_path / "c.parquet"
    broken.write_bytes(b"PAR1 not really")
    columns = pass_through_columns([good, no_text, str(broken), str(tmp_path / "gone.parquet")], FIELDS,
                                   S3Options())
    assert columns == PassThrough(pa.schema([("lang", pa.string())]))


def test_mapped_columns_are_left_to_the_reader(tmp_path: Path) -> None:
    fields = FieldMapping(text_field="body", id_field="key", source_field="origin")
    a = write(tmp_path, "a.parquet", body=pa.array(["x"]), key=pa.array([1]), origin=pa.array(["s"]))
    b = write(tmp_path, "b.parquet", body=pa.array([b"y"]), key=pa.array(["k"]), text=pa.array([2]))
    columns = pass_through_columns([a, b], fields, S3Options())
    assert columns.schema == pa.schema([("text", pa.int64())])
    table = conform_columns(pq.read_table(a), columns, fields, a)
    assert table.column_names == ["body", "key", "origin", "text"] and table["key"].type == pa.int64()


def test_dictionary_and_nested_values_become_text() -> None:
    columns = PassThrough(pa.schema([("v", pa.string())]), frozenset({"v"}))
    table = pa.table({"text": ["a", "b", "c"],
                      "v": pa.array(["x", None, "x"]).dictionary_encode()})
    assert conform_columns(table, columns, FIELDS, "f")["v"].to_pylist() == ["x", None, "x"]
    nested = pa.table({"text": ["a", "b"], "v": pa.array([{"k": [1, 2]}, None])})
    assert conform_columns(nested, columns, FIELDS, "f")["v"].to_pylist() == ['{"k": [1, 2]}', None]


def test_a_value_the_unified_type_cannot_hold_names_the_file() -> None:
    columns = PassThrough(pa.schema([("v", pa.int64())]))
    with pytest.raises(ValueError, match=r"input file s3://b/f.parquet: column v is string and does not cast"):
        conform_columns(pa.table({"text": ["a"], "v": ["not a number"]}), columns, FIELDS, "s3://b/f.parquet")
