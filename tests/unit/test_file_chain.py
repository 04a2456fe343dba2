"""Fused map stages hand each batch through all of them (jobs/file_chain.py): every stage's
files are the same as when each stage reads its input back from the one before, and the
quality families tokenize each batch once, not once each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobs import execute
from jobs.file_chain import STAGE_NOTE
from jobs.part_reader import iter_file_batches
from jobs.parts import read_part
from jobs.scheduler import RunScheduler
from jobs.pipeline_load import load_pipeline
from jobs.store import Store
from operators.quality import text_stats
from tests.conftest import SAMPLE
from tests.support.serial_ray import SerialRay

STAGES = [
    {"op": "gopher_repetition"},
    {"op": "gopher_quality"},
    {"op": "c4_quality"},
    {"op": "fineweb_quality"},
    {"op": "filter", "config": {"rules": [{"keep": "quality_gopher_pass", "reason": "quality:gopher"}]}},
    {"op": "heuristics"},
    {"op": "text_quality_score"},
]


def _run(tmp_path: Path, name: str, *, chain: bool, column_files: bool = True,
         stages: list[dict[str, Any]] = STAGES) -> tuple[Store, dict[str, Any]]:
    raw = {"name": "chain", "store": str(tmp_path / name / "store"),
           "input": {"paths": [str(SAMPLE / f) for f in ("sqlite3-doc.jsonl.gz",)]}, "stages": stages,
           "execution": {"chain_maps": chain, "column_files": column_files, "part_rows": 40, "batch_rows": 16},
           "output": {"format": "parquet"}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    state = RunScheduler(load_pipeline(str(path)).spec, "r").run()
    return Store(raw["store"]), state


def _stage_files(store: Store) -> dict[str, Any]:
    root = Path(store.uri)
    keys = sorted(str(p.relative_to(root)) for p in (root / "stages").rglob("*.parquet"))
    return {k: read_part(store, k) for k in keys}


@pytest.fixture
def serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute, "ray", SerialRay())


@pytest.mark.parametrize("column_files", [True, False])
def test_a_fused_chain_writes_what_stages_run_one_by_one_write(tmp_path: Path, serial: None,
                                                               column_files: bool) -> None:
    fused_store, fused = _run(tmp_path, "fused", chain=True, column_files=column_files)
    apart_store, apart = _run(tmp_path, "apart", chain=False, column_files=column_files)
    fused_files, apart_files = _stage_files(fused_store), _stage_files(apart_store)
    assert len(fused_files) > 2 * len(STAGES)  # several files per stage, rejected ones too
    assert fused_files.keys() == apart_files.keys()
    for key, table in fused_files.items():
        assert table.equals(apart_files[key]), key
    assert [s["rows_out"] for s in fused["stages"]] == [s["rows_out"] for s in apart["stages"]]
    assert fused["stages"][5]["rows_out"] < fused["stages"][0]["rows_out"]  # the filter dropped some


def test_the_families_of_a_chain_tokenize_each_batch_once(tmp_path: Path, serial: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = text_stats._tokenize

    def counted(chunks: Any) -> Any:
        calls.append(len(chunks.parent))
        return real(chunks)

    monkeypatch.setattr(text_stats, "_tokenize", counted)
    store, state = _run(tmp_path, "fused", chain=True, stages=STAGES[:4])
    root = Path(store.uri)
    read_files = [str(p.relative_to(root)) for p in (root / "stages").glob("read-*/wave-*/part-*.parquet")]
    batches = sum(1 for key in read_files for _ in iter_file_batches(store, key, 16))
    assert batches > 4 and len(calls) == batches
    calls.clear()
    _run(tmp_path, "apart", chain=False, stages=STAGES[:4])
    assert len(calls) == 4 * batches  # each family on its own reads and tokenizes every batch


def test_a_stage_that_raises_in_a_fused_chain_is_named(tmp_path: Path, serial: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from operators.quality.c4 import C4Quality

    def broken(self: Any, batch: Any) -> Any:
        raise ValueError("broken scorer")

    monkeypatch.setattr(C4Quality, "__call__", broken)
    with pytest.raises(ValueError) as raised:
        _run(tmp_path, "fused", chain=True, stages=STAGES[:4])
    assert f"{STAGE_NOTE}c4_quality" in getattr(raised.value, "__notes__", [])
