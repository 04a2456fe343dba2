"""Parquet input files' other columns are conformed to the first file's (jobs/input_files.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.input_files import conform_columns
from operators.io.records import FieldMapping

FIELDS = FieldMapping()
EXPECTED = pa.schema([("id", pa.string()), ("text", pa.string()), ("lang", pa.string()), ("score", pa.float64())])


def test_columns_are_cast_reordered_and_filled() -> None:
    table = pa.table({"score": pa.array([1, 2], pa.int64()), "text": ["a", "b"], "id": ["1", "2"]})
    out = conform_columns(table, EXPECTED, FIELDS, "b.parquet", "a.parquet")
    assert out.column_names == ["text", "id", "lang", "score"]
    assert out["score"].type == pa.float64() and out["score"].to_pylist() == [1.0, 2.0]
    assert out["lang"].null_count == 2


def test_a_type_that_does_not_cast_or_an_extra_column_names_both_files() -> None:
    table = pa.table({"text": ["a"], "lang": pa.array([{"x": 1}])})
    with pytest.raises(ValueError, match=r"input file b.parquet: column lang is struct.*first input file a.parquet"):
        conform_columns(table, EXPECTED, FIELDS, "b.parquet", "a.parquet")
    with pytest.raises(ValueError, match=r"b.parquet has column\(s\) extra that the first input file a.parquet lacks"):
        conform_columns(pa.table({"text": ["a"], "extra": [1]}), EXPECTED, FIELDS, "b.parquet", "a.parquet")
