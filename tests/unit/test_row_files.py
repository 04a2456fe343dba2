"""Row files: a filtering map stage stores the numbers of the rows it keeps, not their text."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jobs.part_reader import ROW_COLUMN, iter_file_batches, logical_bytes, logical_schema, read_part
from jobs.parts import FileOutput, column_part, row_part, taken_part
from jobs.store import S3Options, Store
from operators.base import DROP_REASON, TAKE_COLUMN, set_column, with_drop_reason


def _store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"), S3Options())


def _docs(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": [f"d{i:04d}" for i in range(start, start + n)],
                     "text": [f"text {i} " * (i % 7 + 1) for i in range(start, start + n)],
                     "score": pa.array([float(i) for i in range(start, start + n)])})


def _write(store: Store, prefix: str, tables: list[pa.Table]) -> dict:
    writer = FileOutput(store, prefix).writer()
    for table in tables:
        writer.write("part.parquet", table)
    (stats,) = writer.close()
    return stats


def _drop(batch: pa.Table, keep_every: int) -> pa.Table:
    """A filter: rows whose score is not a multiple of ``keep_every`` get a reason."""
    failed = pa.array(batch["score"].to_numpy() % keep_every != 0)
    return with_drop_reason(batch, pc.if_else(failed, pa.scalar("filter:score"), pa.scalar(None, pa.string())))


def _filter_file(store: Store, base: str, prefix: str, batch_rows: int, keep_every: int,
                 extra: bool = False) -> tuple[dict, pa.Table, pa.Table]:
    """Filter ``base`` the way jobs/execute.py does; (kept stats, expected kept, expected rejected)."""
    writer = FileOutput(store, prefix).writer()
    written, first, results = (DROP_REASON,) + (("flag",) if extra else ()), 0, []
    for batch in iter_file_batches(store, base, batch_rows):
        result = _drop(batch, keep_every)
        if extra:
            result = set_column(result, "flag", pc.greater(batch["score"], 100.0))
        kept, rejected = row_part(batch, result, written, base, first)
        writer.append("rejected", "part.parquet", rejected)
        writer.append("kept", "part.parquet", kept)
        first += batch.num_rows
        results.append(result)
    stats = {s["kind"]: s for s in writer.close()}
    everything = pa.concat_tables(results)
    dropped = pc.is_valid(everything[DROP_REASON])
    return stats, everything.filter(pc.invert(dropped)).drop_columns([DROP_REASON]), everything.filter(dropped)


@pytest.mark.parametrize("keep_every", [1, 3, 50, 997])
def test_row_file_reads_back_as_the_kept_rows(tmp_path: Path, keep_every: int) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", [_docs(700), _docs(300, start=700)])
    stats, kept, rejected = _filter_file(store, base["key"], "b", batch_rows=128, keep_every=keep_every)
    assert pq.read_schema(store.fs_path(stats["kept"]["key"])).names == [ROW_COLUMN]  # no text copied
    assert stats["kept"]["rows"] == kept.num_rows == len(range(0, 1000, keep_every))
    for rows in (1, 100, 128, 5000):
        assert pa.concat_tables(iter_file_batches(store, stats["kept"]["key"], rows)).equals(kept)
        got = pa.concat_tables(iter_file_batches(store, stats["kept"]["key"], rows, ["score", "id"]))
        assert got.column_names == ["id", "score"] and got.equals(kept.select(["id", "score"]))
    if keep_every > 1:  # rejected rows are stored whole, for users to read as they are
        assert pq.read_table(store.fs_path(stats["rejected"]["key"])).equals(rejected)
    # a row file weighs its share of its base: the scheduler plans shards by it
    assert stats["kept"]["bytes"] == logical_bytes(store, stats["kept"]["key"])
    assert stats["kept"]["bytes"] <= base["bytes"] * kept.num_rows // 1000 + 10_000


def test_row_file_with_own_columns_and_chains(tmp_path: Path) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", [_docs(500)])
    # a column file over the base, a row file over that, a column file over the row file
    batches = list(iter_file_batches(store, base["key"], 64))
    col = _write(store, "b", [column_part(b, set_column(b, "length", pc.utf8_length(b["text"])), ("length",),
                                          base["key"]) for b in batches])
    stats, kept, _ = _filter_file(store, col["key"], "c", batch_rows=50, keep_every=4, extra=True)
    assert pq.read_schema(store.fs_path(stats["kept"]["key"])).names == [ROW_COLUMN, "flag"]
    assert read_part(store, stats["kept"]["key"]).equals(kept)
    assert read_part(store, stats["kept"]["key"], ["flag"]).equals(kept.select(["flag"]))
    assert logical_schema(store, stats["kept"]["key"]) == kept.schema
    top_batches = list(iter_file_batches(store, stats["kept"]["key"], 30))
    top = _write(store, "d", [column_part(b, set_column(b, "half", pc.divide(b["score"], 2.0)), ("half",),
                                          stats["kept"]["key"]) for b in top_batches])
    expected = set_column(kept, "half", pc.divide(kept["score"], 2.0))
    assert read_part(store, top["key"]).equals(expected)


def test_an_operator_changing_undeclared_columns_while_dropping_fails(tmp_path: Path) -> None:
    batch = _docs(10)
    result = with_drop_reason(set_column(batch, "score", pc.multiply(batch["score"], 2.0)),
                              pa.nulls(10, pa.string()))
    with pytest.raises(RuntimeError, match="score"):
        row_part(batch, result, (DROP_REASON,), "a/part.parquet", 0)


def test_a_row_file_naming_rows_past_its_base_fails(tmp_path: Path) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", [_docs(20)])
    batch = read_part(store, base["key"])
    kept, _ = row_part(batch, with_drop_reason(batch, pa.nulls(20, pa.string())), (DROP_REASON,), base["key"], 15)
    bad = _write_raw(store, "b/part.parquet", kept)
    with pytest.raises(RuntimeError, match="past the end"):
        read_part(store, bad)


def _write_raw(store: Store, key: str, table: pa.Table) -> str:
    writer = FileOutput(store, key.rsplit("/", 1)[0]).writer()
    writer.append("kept", key.rsplit("/", 1)[1], table)
    writer.close()
    return key


def _copies(batch: pa.Table) -> pa.Table:
    """A copying operator as mix.sample is one: document i copied i % 3 times (none: rejected),
    with a copy number; given only id and score."""
    import numpy as np

    n = batch.num_rows
    copies = batch["score"].to_numpy().astype(np.int64) % 3
    take = np.repeat(np.arange(n), np.maximum(copies, 1))
    copy = np.arange(len(take)) - np.repeat(np.cumsum(np.maximum(copies, 1)) - np.maximum(copies, 1),
                                            np.maximum(copies, 1))
    out = set_column(batch.take(pa.array(take)), TAKE_COLUMN, pa.array(take, pa.int64()))
    out = set_column(out, "copy", pa.array(copy, pa.int32()))
    rejected = pa.array(copies[take] == 0)
    return with_drop_reason(out, pc.if_else(rejected, pa.scalar("mix:not_sampled"), pa.scalar(None, pa.string())))


@pytest.mark.parametrize("batch_rows", [7, 64, 1000])
def test_a_copying_stage_stores_its_copies_as_repeated_row_numbers(tmp_path: Path, batch_rows: int) -> None:
    store = _store(tmp_path)
    base = _write(store, "stages/read", [_docs(200)])["key"]
    writer = FileOutput(store, "stages/sample").writer()
    first, expected = 0, []
    for batch in iter_file_batches(store, base, batch_rows):
        result = _copies(batch.select(["id", "score"]))
        kept, rejected, rows = taken_part(batch, result, ("copy", DROP_REASON), base, first)
        writer.append("rejected", "part.parquet", rejected)
        writer.append("kept", "part.parquet", kept)
        assert set(kept.column_names) == {ROW_COLUMN, "copy"}  # no text stored for the copies
        whole = set_column(batch.take(pa.array(result[TAKE_COLUMN])), "copy", result["copy"])
        expected.append(whole.filter(pc.is_null(result[DROP_REASON])))
        first += batch.num_rows
    stats = {s["kind"]: s for s in writer.close()}
    got = read_part(store, stats["kept"]["key"])
    assert got.equals(pa.concat_tables(expected))
    assert got.num_rows == sum(i % 3 for i in range(200)) and got.column_names == ["id", "text", "score", "copy"]
    rejected = read_part(store, stats["rejected"]["key"])
    assert rejected.column_names == ["id", "text", "score", "copy", DROP_REASON]
    assert sorted(rejected["id"].to_pylist()) == [f"d{i:04d}" for i in range(200) if i % 3 == 0]
    # repeats count in the size the scheduler plans by: more rows than the base, more bytes
    assert logical_bytes(store, stats["kept"]["key"]) > logical_bytes(store, base)


def test_a_copying_stage_must_name_rows_in_order() -> None:
    batch = _docs(10)
    result = set_column(batch.take(pa.array([3, 1])), TAKE_COLUMN, pa.array([3, 1], pa.int64()))
    with pytest.raises(RuntimeError, match="non-decreasing"):
        taken_part(batch, result, (), "base", 0)
    with pytest.raises(RuntimeError, match="no _tamis_take"):
        taken_part(batch, batch, (), "base", 0)
    sneaky = set_column(set_column(batch, TAKE_COLUMN, pa.array(range(10), pa.int64())), "other", pa.nulls(10))
    with pytest.raises(RuntimeError, match="other"):
        taken_part(batch, sneaky, (), "base", 0)
