"""Output shards split by a column's values (jobs/output_shards.py, jobs/output.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from jobs.output import _written_by_tamis
from jobs.output_shards import split_folder, write_shard
from jobs.store import S3Options, Store


def test_split_folders_are_hive_names() -> None:
    assert split_folder("mix_phase", "anneal") == "mix_phase=anneal"
    assert split_folder("cluster_id", 7) == "cluster_id=7"
    assert split_folder("source", "a/b c") == "source=a%2Fb%20c"
    assert split_folder("source", None) == "source=__null__"


def test_only_shards_tamis_wrote_are_replaced() -> None:
    assert _written_by_tamis("part-00000.parquet") and _written_by_tamis("mix_phase=main/part-00001.jsonl.gz")
    assert not _written_by_tamis("README.md") and not _written_by_tamis("mine/part-0.parquet")
    assert not _written_by_tamis("a=b/c/part-0.parquet") and not _written_by_tamis("mine/_BLEND.txt")
    assert _written_by_tamis("a=b/c=d/part-0.parquet") and _written_by_tamis("a=b/_BLEND.txt")


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_shard_is_split_by_value_and_reads_back_as_a_dataset(tmp_path: Path, fmt: str) -> None:
    store = Store(str(tmp_path / "store"), S3Options())
    (tmp_path / "store").mkdir()
    table = pa.table({"id": [f"d{i}" for i in range(10)], "phase": ["main", "anneal", None, "main", "main"] * 2,
                      "_tamis_file": ["x"] * 10})
    pq.write_table(table.slice(0, 6), tmp_path / "store" / "a.parquet")
    pq.write_table(table.slice(6), tmp_path / "store" / "b.parquet")
    out = Store(str(tmp_path / "out"), S3Options())
    stats = write_shard(store, out, 3, ["a.parquet", "b.parquet"], fmt, batch_rows=4, split_by=["phase"])
    ext = "parquet" if fmt == "parquet" else "jsonl.gz"
    assert sorted((s["key"], s["rows"]) for s in stats) == [
        (f"phase=__null__/part-00003.{ext}", 2), (f"phase=anneal/part-00003.{ext}", 2),
        (f"phase=main/part-00003.{ext}", 6)]
    if fmt == "parquet":
        back = ds.dataset(str(tmp_path / "out"), format="parquet").to_table()
        assert sorted(back["id"].to_pylist()) == sorted(table["id"].to_pylist())
        assert "_tamis_file" not in back.column_names
    with pytest.raises(ValueError, match="output.split_by: the last stage's rows have no column 'nope'"):
        write_shard(store, out, 0, ["a.parquet"], fmt, batch_rows=4, split_by=["phase", "nope"])


def test_two_level_split_with_weights(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"), S3Options())
    (tmp_path / "store").mkdir()
    pq.write_table(pa.table({"id": list("abcdef"), "phase": ["main"] * 4 + ["anneal"] * 2,
                             "source": ["web", "code", "web", "web", "code", "code"],
                             "tokens": [1, 2, 3, 4, 5, 6]}), tmp_path / "store" / "a.parquet")
    out = Store(str(tmp_path / "out"), S3Options())
    stats = write_shard(store, out, 0, ["a.parquet"], "parquet", 2, ["phase", "source"], "tokens")
    got = {s["key"]: (s["rows"], json.loads(s["reasons"])["weight"]) for s in stats}
    assert got == {"phase=main/source=web/part-00000.parquet": (3, 8.0),
                   "phase=main/source=code/part-00000.parquet": (1, 2.0),
                   "phase=anneal/source=code/part-00000.parquet": (2, 11.0)}
