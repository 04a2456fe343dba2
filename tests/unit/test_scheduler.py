"""The scheduler and its ledger without a Ray runtime: real operators, a local store, the
execution code run serially (tests/support/serial_ray.py), and crashes injected between waves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from jobs import execute
from jobs.checkpoint import commit_key
from jobs.ledger import StageLedger
from jobs.parts import FileOutput
from jobs.scheduler import RunScheduler
from jobs.pipeline_load import load_pipeline
from jobs.store import Store
from tests.conftest import REPO, SAMPLE
from tests.support.serial_ray import SerialRay


class Recorder:
    """A Progress that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.fields: dict[int, dict[str, Any]] = {}

    def event(self, message: str) -> None:
        self.events.append(message)

    def stage(self, index: int, **fields: Any) -> None:
        self.fields.setdefault(index, {}).update(fields)


def _writes(store: Store, calls: list[tuple[int, list[str]]], prefixes: list[str]):
    """A wave runner for the ledger: each stage from ``start`` writes one file of 2 rows."""
    def run(start: int, inputs: list[str]) -> list[dict[str, Any]]:
        calls.append((start, inputs))
        stats = []
        for prefix in prefixes[start:]:
            writer = FileOutput(store, prefix).writer()
            writer.write("part-00000.parquet", pa.table({"id": ["a", "b"]}))
            stats += writer.close()
        return stats
    return run


def test_ledger_reuses_wave_commits_and_resumes_inside_a_chain(tmp_path: Path) -> None:
    store, progress = Store(str(tmp_path)), Recorder()
    ledger = StageLedger(store, progress)
    prefixes = ["stages/a-1/wave-00000-x", "stages/b-2/wave-00000-y", "stages/c-3/wave-00000-z"]
    calls: list[tuple[int, list[str]]] = []
    results, reused = ledger.run_wave(prefixes[:1], ["in"], 2, _writes(store, calls, prefixes[:1]))
    assert reused == 0 and calls == [(0, ["in"])] and results[0].rows_out == 2
    # the first stage committed this wave earlier: the chain resumes at the second, on its files
    results, reused = ledger.run_wave(prefixes, ["in"], 2, _writes(store, calls, prefixes))
    assert reused == 1 and calls[-1] == (1, ["stages/a-1/wave-00000-x/part-00000.parquet"])
    assert [r.rows_in for r in results] == [2, 2, 2]
    assert all(store.exists(commit_key(p)) for p in prefixes)
    ledger.run_wave(prefixes, ["in"], 2, _writes(store, calls, prefixes))
    assert len(calls) == 2  # everything committed: nothing runs


def _pipeline(tmp_path: Path, config: str) -> Any:
    raw = yaml.safe_load((REPO / "configs" / config).read_text())
    raw["input"]["paths"] = [str(SAMPLE / "*.jsonl.gz")]
    raw["store"] = str(tmp_path / "store")
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / config
    path.write_text(yaml.safe_dump(raw))
    return load_pipeline(str(path))


def _kept_ids(state: dict[str, Any]) -> list[str]:
    out = Path(state["output"]["uri"])
    return sorted(i for p in sorted(out.glob("part-*.parquet")) for i in pq.read_table(p, columns=["id"])["id"].to_pylist())


class CrashAfter:
    """jobs.execute, except that the ``n``-th call running work raises (a killed driver)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(execute, name)
        if not name.startswith("run_"):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt(f"killed at call {self.n} ({name})")
            return real(*args, **kwargs)
        return call


@pytest.mark.parametrize("config", ["demo.yaml", "dedup.yaml"])
def test_a_run_killed_at_any_call_resumes_to_the_same_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            config: str) -> None:
    monkeypatch.setattr(execute, "ray", SerialRay())
    clean = RunScheduler(_pipeline(tmp_path / "clean", config).spec, "clean").run()
    expected = _kept_ids(clean)
    assert expected and len(set(expected)) == len(expected)
    calls = CrashAfter(10**9)
    RunScheduler(_pipeline(tmp_path / "count", config).spec, "count", executor=calls).run()
    for n in range(1, calls.calls + 1):
        pipeline = _pipeline(tmp_path / f"crash-{n}", config)
        with pytest.raises(KeyboardInterrupt):
            RunScheduler(pipeline.spec, "r", executor=CrashAfter(n)).run()
        state = RunScheduler(pipeline.spec, "r").run()
        assert _kept_ids(state) == expected, f"killed at call {n}"
    rerun = RunScheduler(pipeline.spec, "r").run()
    assert {s["status"] for s in rerun["stages"]} == {"cached"}
