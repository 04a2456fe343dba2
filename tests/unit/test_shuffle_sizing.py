"""Group partitions are sized by what the shuffle moves, measured on a sample (jobs/shuffle.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.parts import FILE_COLUMN, FileOutput
from jobs.checkpoint import FileRef
from jobs.shuffle import SAMPLE_FILES, shuffled_bytes
from jobs.store import S3Options, Store
from operators.base import GroupOperator, OperatorConfig


class _Candidates(GroupOperator[OperatorConfig]):
    """Documents grouped by 'comp'; the rows without one bypass the shuffle."""

    Config = OperatorConfig
    bypass_null_keys = True

    def group_key(self) -> tuple[str, ...]:
        return ("comp",)


class _Words(GroupOperator[OperatorConfig]):
    """An artifact of one small row per word of each document's text."""

    Config = OperatorConfig
    emits = "artifact"
    reads = ("id", "text")

    def group_key(self) -> tuple[str, ...]:
        return ("word",)

    def project(self, batch: pa.Table) -> pa.Table:
        words = pc.split_pattern(batch["text"], " ")
        return pa.table({"word": pc.list_flatten(words),
                         "id": pc.take(batch["id"], pc.list_parent_indices(words))})


def _docs(n: int, candidates_every: int | None) -> pa.Table:
    comp = [f"c{i // 2}" if candidates_every and i % candidates_every == 0 else None for i in range(n)]
    return pa.table({"id": [f"d{i:05d}" for i in range(n)], "text": ["lorem ipsum dolor " * 50] * n,
                     "comp": pa.array(comp, pa.string())})


def _files(tmp_path: Path, tables: list[pa.Table]) -> tuple[Store, list[FileRef]]:
    store = Store(str(tmp_path / "store"), S3Options())
    stats = []
    for i, table in enumerate(tables):
        writer = FileOutput(store, "stages/up").writer()
        writer.write(f"part-{i:05d}.parquet", table)
        stats += writer.close()
    return store, [FileRef(s["key"], s["rows"], s["bytes"]) for s in stats]


def test_bypassed_rows_are_not_counted(tmp_path: Path) -> None:
    store, files = _files(tmp_path, [_docs(400, candidates_every=4) for _ in range(3)])
    op = _Candidates(OperatorConfig())
    estimate = shuffled_bytes(op, store, files, batch_rows=100)
    one = _docs(100, candidates_every=4)
    per_row = one.filter(pc.is_valid(one["comp"])).append_column(
        FILE_COLUMN, pa.repeat(pa.scalar("part-00000.parquet"), 25)).nbytes / 100
    assert abs(estimate - per_row * 1200) < 0.01 * estimate  # Parquet-read buffers differ slightly
    whole = _docs(1200, None).nbytes
    assert estimate < whole / 3  # a quarter of the rows are shuffled
    store, files = _files(tmp_path / "none", [_docs(400, candidates_every=None)])
    assert shuffled_bytes(op, store, files, batch_rows=100) == 0


def test_an_artifact_projection_is_measured_not_the_documents(tmp_path: Path) -> None:
    store, files = _files(tmp_path, [_docs(300, None) for _ in range(2)])
    op = _Words(OperatorConfig())
    estimate = shuffled_bytes(op, store, files, batch_rows=50)
    sample = op.project(_docs(50, None).select(["id", "text"]).append_column(
        FILE_COLUMN, pa.repeat(pa.scalar("part-00000.parquet"), 50)))
    assert sample.num_rows == 151 * 50  # 150 words and the empty string after the last space
    assert abs(estimate - sample.nbytes / 50 * 600) < 0.01 * estimate
    assert shuffled_bytes(op, store, [], batch_rows=50) == 0


def test_the_sample_spreads_over_the_files(tmp_path: Path) -> None:
    # only the last file has candidates: a sample of the first files alone would say 0
    tables = [_docs(100, None) for _ in range(9)] + [_docs(100, candidates_every=1)]
    store, files = _files(tmp_path, tables)
    estimate = shuffled_bytes(_Candidates(OperatorConfig()), store, files, batch_rows=100)
    assert estimate > 0
    picked = np.unique(np.round(np.arange(SAMPLE_FILES) * 9 / (SAMPLE_FILES - 1)).astype(int))
    assert 9 in picked.tolist()
