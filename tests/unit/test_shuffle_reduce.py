"""The store shuffle's two phases (jobs/shuffle.py): batched fragments, lone rows, the sort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs import shuffle
from jobs.parts import FILE_COLUMN, FileOutput, read_files
from jobs.store import S3Options, Store
from operators.base import GroupOperator, OperatorConfig
from operators.dedup.lsh import BUCKET, LshBuckets, bucket_rows
from operators.dedup.minhash_config import BANDS, MinhashDedupConfig


class _Pairs(GroupOperator[OperatorConfig]):
    """Emits (key, first id, each id) for every row: groups of one row included."""

    Config = OperatorConfig
    emits = "artifact"
    reads = ("id", "k")

    def group_key(self) -> tuple[str, ...]:
        return ("k",)

    def project(self, batch: pa.Table) -> pa.Table:
        return batch.select(["k", "id", FILE_COLUMN])

    def __call__(self, table: pa.Table) -> pa.Table:
        return table.select(["k", "id"])


class _SharedPairs(_Pairs):
    lone_rows_matter = False


def _store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"), S3Options())


def _input(store: Store, n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    table = pa.table({"id": [f"d{seed}-{i:05d}" for i in rng.permutation(n)],
                      "k": pa.array(rng.integers(0, n // 2, n), pa.uint64())})
    writer = FileOutput(store, "up").writer()
    writer.write(f"part-{seed}.parquet", table)
    (stats,) = writer.close()
    return stats["key"]


def _shuffle(store: Store, op: GroupOperator, keys: list[str], partitions: int, batch_rows: int) -> pa.Table:
    out = FileOutput(store, f"stage-{type(op).__name__}")
    stats = []
    for number, key in enumerate(keys):
        stats += shuffle.partition_file(op, store, key, number, False, out, partitions, batch_rows, ["id", "k"])
    _, by_partition = shuffle.fragments_by_partition(stats)
    for partition, fragments in by_partition.items():
        for fragment in fragments:  # phase 1 writes a file's rows for a partition as one batch
            with store.fs.open_input_file(store.fs_path(fragment)) as f:
                assert pa.ipc.open_file(f).num_record_batches == 1
    written = []
    for partition, fragments in by_partition.items():
        written += [s["key"] for s in shuffle.reduce_partition(op, store, partition, fragments, out)]
    return read_files(store, written)


def test_rows_are_sorted_by_key_then_id_and_lone_rows_dropped_when_they_do_not_matter(tmp_path: Path) -> None:
    store = _store(tmp_path)
    keys = [_input(store, 3000, seed) for seed in range(3)]
    every = _shuffle(store, _Pairs(OperatorConfig()), keys, partitions=3, batch_rows=100)
    assert every.num_rows == 9000
    shared = _shuffle(store, _SharedPairs(OperatorConfig()), keys, partitions=3, batch_rows=100)
    counts = {c["values"]: c["counts"] for c in pc.value_counts(every["k"]).to_pylist()}
    expected = every.filter(pa.array([counts[k] > 1 for k in every["k"].to_pylist()]))
    assert 0 < shared.num_rows < every.num_rows
    assert sorted(zip(*shared.to_pydict().values())) == sorted(zip(*expected.to_pydict().values()))
    # within each partition's output, rows come sorted by key, then id
    rows = list(zip(shared["k"].to_pylist(), shared["id"].to_pylist()))
    assert sum(a > b for a, b in zip(rows, rows[1:])) <= 2  # one drop at most per partition boundary


def test_lsh_bucket_keys_keep_scopes_and_bands_apart() -> None:
    config = MinhashDedupConfig(num_perm=16, lsh={"bands": 4, "rows": 4}, scope="source")
    bands = 4
    hashes = np.array([[7, 7, 7, 7], [7, 7, 7, 7], [1, 2, 3, 4]], dtype=np.uint64)
    batch = pa.table({"id": ["a", "b", "c"], "source": ["web", "books", "web"],
                      BANDS: pa.FixedSizeListArray.from_arrays(pa.array(hashes.reshape(-1)), bands)})
    key = bucket_rows(batch, config)[BUCKET].to_numpy().reshape(3, bands)
    assert len(set(key[0])) == bands  # the same band hash in four bands: four buckets
    assert not set(key[0]) & set(key[1])  # ... and other ones in another scope
    same_scope = bucket_rows(batch.set_column(1, "source", pa.array(["web"] * 3)), config)[BUCKET]
    assert same_scope.to_numpy().reshape(3, bands)[1].tolist() == key[0].tolist()
    global_scope = MinhashDedupConfig(num_perm=16, lsh={"bands": 4, "rows": 4}, scope="global")
    assert bucket_rows(batch, global_scope)[BUCKET].to_numpy().reshape(3, bands)[1].tolist() == \
        bucket_rows(batch, global_scope)[BUCKET].to_numpy().reshape(3, bands)[0].tolist()


def test_lsh_edges_are_the_same_without_lone_buckets(tmp_path: Path) -> None:
    config = MinhashDedupConfig(num_perm=16, lsh={"bands": 4, "rows": 4}, scope="global")
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 900, (600, 4)).astype(np.uint64)  # many shared buckets, many lone ones
    table = pa.table({"id": [f"d{i:04d}" for i in range(600)], "source": ["web"] * 600,
                      BANDS: pa.FixedSizeListArray.from_arrays(pa.array(hashes.reshape(-1)), 4),
                      FILE_COLUMN: ["f"] * 600})
    rows = bucket_rows(table, config)
    op = LshBuckets(config)
    full = op(rows.take(pc.sort_indices(rows, [(BUCKET, "ascending"), ("id", "ascending")])))
    shared = shuffle._in_shared_groups(rows, (BUCKET,))
    assert shared.num_rows < rows.num_rows
    pruned = op(shared.take(pc.sort_indices(shared, [(BUCKET, "ascending"), ("id", "ascending")])))
    assert sorted(full.to_pylist(), key=str) == sorted(pruned.to_pylist(), key=str)
    assert full.num_rows > 0


def test_string_hashes_are_blake2b_of_each_value_whatever_the_chunking() -> None:
    import hashlib

    from operators.hashing import string_hashes

    values = ["web", "books", "web", "", "код"]
    expected = [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") for v in values]
    assert string_hashes(pa.array(values)).tolist() == expected
    assert string_hashes(pa.chunked_array([values[:2], values[2:]])).tolist() == expected
    three = int.from_bytes(hashlib.blake2b(b"3", digest_size=8).digest(), "little")
    assert string_hashes(pa.array([3, 3], pa.int64())).tolist() == [three, three]  # by string form


class _UnsortedPairs(_Pairs):
    rows_sorted = False


def test_an_operator_that_orders_rows_itself_gets_them_as_read_every_time(tmp_path: Path) -> None:
    """rows_sorted False (minhash_dedup.keep): no sort in phase 2, the same groups whole in
    one call, and the same order on a rerun (fragments are read in file order)."""
    store = _store(tmp_path)
    keys = [_input(store, 2000, seed) for seed in range(3)]
    sorted_rows = _shuffle(store, _Pairs(OperatorConfig()), keys, partitions=2, batch_rows=300)
    first = _shuffle(store, _UnsortedPairs(OperatorConfig()), keys, partitions=2, batch_rows=300)
    again = _shuffle(store, _UnsortedPairs(OperatorConfig()), keys, partitions=2, batch_rows=300)
    assert first.equals(again)
    assert sorted(zip(*first.to_pydict().values())) == sorted(zip(*sorted_rows.to_pydict().values()))
    rows = list(zip(first["k"].to_pylist(), first["id"].to_pylist()))
    assert sum(a > b for a, b in zip(rows, rows[1:])) > 100  # not sorted: as the files were read
