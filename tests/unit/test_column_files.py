"""Column files: a row-keeping map stage stores only its columns, joined to its input on read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jobs.parts import FileOutput, column_part, iter_file_batches, logical_bytes, logical_columns, read_part
from jobs.store import S3Options, Store
from operators.base import set_column


def _store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"), S3Options())


def _write(store: Store, prefix: str, name: str, tables: list[pa.Table]) -> dict:
    writer = FileOutput(store, prefix).writer()
    for table in tables:
        writer.write(name, table)
    (stats,) = writer.close()
    return stats


def _docs(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": [f"d{i:04d}" for i in range(start, start + n)],
                     "text": [f"text {i} " * (i % 7 + 1) for i in range(start, start + n)],
                     "score": pa.array([float(i) for i in range(start, start + n)]),
                     "tmp": pa.array(list(range(start, start + n)), pa.int64())})


def _op(batch: pa.Table) -> pa.Table:
    """Adds 'length', replaces 'score', drops 'tmp': what a keeps_rows operator may do."""
    out = set_column(batch, "length", pc.utf8_length(batch["text"]))
    out = set_column(out, "score", pc.multiply(batch["score"], 2.0))
    return out.drop_columns(["tmp"])


WRITTEN = ("length", "score", "tmp")


def _map_file(store: Store, base_key: str, prefix: str, batch_rows: int) -> tuple[dict, pa.Table]:
    """Map ``base_key`` with ``_op`` the way jobs/execute.py does; (stats, expected table)."""
    batches = list(iter_file_batches(store, base_key, batch_rows))
    results = [_op(b) for b in batches]
    stats = _write(store, prefix, "part.parquet", [column_part(b, r, WRITTEN, base_key) for b, r in zip(batches, results)])
    return stats, pa.concat_tables(results)


def test_column_file_reads_back_as_the_whole_output(tmp_path: Path) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", "part.parquet", [_docs(300), _docs(200, start=300)])
    stats, expected = _map_file(store, base["key"], "b", batch_rows=128)
    assert read_part(store, stats["key"]).equals(expected)
    # the file itself holds only what the stage wrote
    import pyarrow.parquet as pq

    assert pq.read_schema(store.fs_path(stats["key"])).names == ["score", "length"]
    # any batch size, any column subset, in the output's column order
    for rows in (1, 77, 1000):
        got = pa.concat_tables(iter_file_batches(store, stats["key"], rows, ["length", "id"]))
        assert got.column_names == ["id", "length"]
        assert got.equals(expected.select(["id", "length"]))
    # bytes count the base too: the scheduler sizes waves and shards by them
    assert stats["bytes"] == logical_bytes(store, stats["key"]) > base["bytes"]


def test_own_columns_are_read_without_the_base(tmp_path: Path) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", "part.parquet", [_docs(50)])
    stats, expected = _map_file(store, base["key"], "b", batch_rows=16)
    store.fs.delete_file(store.fs_path(base["key"]))
    assert read_part(store, stats["key"], ["length"]).equals(expected.select(["length"]))
    with pytest.raises(FileNotFoundError):
        read_part(store, stats["key"], ["text"])


def test_dropped_or_unknown_columns_are_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", "part.parquet", [_docs(10)])
    stats, _ = _map_file(store, base["key"], "b", batch_rows=4)
    for missing in ("tmp", "nope"):
        with pytest.raises(KeyError, match=missing):
            read_part(store, stats["key"], ["id", missing])


def test_a_chain_of_column_files(tmp_path: Path) -> None:
    store = _store(tmp_path)
    base = _write(store, "a", "part.parquet", [_docs(100)])
    first, once = _map_file(store, base["key"], "b", batch_rows=30)
    batches = list(iter_file_batches(store, first["key"], 45))
    results = [set_column(b, "flag", pc.greater(b["length"], 20)) for b in batches]
    second = _write(store, "c", "part.parquet", [column_part(b, r, ("flag",), first["key"])
                                                 for b, r in zip(batches, results)])
    assert read_part(store, second["key"]).equals(set_column(once, "flag", pc.greater(once["length"], 20)))
    assert second["bytes"] == logical_bytes(store, second["key"])
    # a later stage that drops all of the earlier one's own columns (as embed.encode drops the
    # token ids embed.tokenize wrote): nothing of that file but its row count is needed
    results = [set_column(b, "flag", pc.greater(b["length"], 20)).drop_columns(["length"]) for b in batches]
    third = _write(store, "d", "part.parquet", [column_part(b, r, ("flag", "length"), first["key"])
                                                for b, r in zip(batches, results)])
    assert read_part(store, third["key"]).equals(set_column(once, "flag", pc.greater(once["length"], 20))
                                                 .drop_columns(["length"]))


def test_an_operator_that_breaks_its_promise_is_caught() -> None:
    batch = _docs(8)
    with pytest.raises(RuntimeError, match="rows"):
        column_part(batch, batch.slice(0, 7), ("score",), "k")
    with pytest.raises(RuntimeError, match="'extra'"):
        column_part(batch, set_column(batch, "extra", batch["score"]), ("score",), "k")
    # a column changed in place that it does not declare
    with pytest.raises(RuntimeError, match="'text'"):
        column_part(batch, set_column(batch, "text", pc.utf8_upper(batch["text"])), ("score",), "k")
    # passing columns through, even reordered, is fine
    assert column_part(batch, batch.select(["tmp", "id", "text", "score"]), ("score",), "k").column_names == ["score"]


def test_an_operator_given_only_the_columns_it_reads(tmp_path: Path) -> None:
    """jobs/ hands a row-keeping operator only its columns_read: the others pass through
    unread, and the stored column order is the one a whole-batch run gives."""
    store = _store(tmp_path)
    base = _write(store, "a", "part.parquet", [_docs(120)])
    whole_stats, expected = _map_file(store, base["key"], "whole", batch_rows=50)
    reads = ["text", "score", "tmp"]  # _op reads text and score, and drops tmp
    batches = list(iter_file_batches(store, base["key"], 50, reads))
    assert batches[0].column_names == reads
    parts = [column_part(b, _op(b), WRITTEN, base["key"], logical_columns(store, base["key"])) for b in batches]
    stats = _write(store, "narrow", "part.parquet", parts)
    assert read_part(store, stats["key"]).equals(expected)
    assert read_part(store, stats["key"]).column_names == read_part(store, whole_stats["key"]).column_names
    assert logical_columns(store, stats["key"]) == expected.column_names
