"""Kill the driver (SIGKILL) during a later stage, rerun the same command, compare outputs.

Runs `tamis run` as a subprocess, as a user would, with a slow pass-through stage so the kill
lands mid-stage after some of its waves committed.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, SAMPLE, demo_config, write_config
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration


def small_files(into: Path, lines_per_file: int = 40) -> Path:
    """The sample corpus re-cut into files of ``lines_per_file`` raw lines (bad lines
    included), made once per test directory. One file is one wave here, and a dozen short
    waves keep the run going well after its first two commits: with the sample's four files,
    the four waves could all land within one poll of run.json on a slow machine."""
    if not into.exists():
        into.mkdir(parents=True)
        lines = [line for f in sorted(SAMPLE.glob("*.jsonl.gz")) for line in gzip.open(f).read().splitlines()]
        for n in range(0, len(lines), lines_per_file):
            (into / f"part-{n // lines_per_file:03d}.jsonl.gz").write_bytes(
                gzip.compress(b"\n".join(lines[n:n + lines_per_file]) + b"\n", mtime=0))
    return into


def resume_config(store: Path) -> dict[str, Any]:
    """The demo's stages with a slow pass-through after heuristics, over about a dozen waves
    of one batch each (one second apiece), in parallel on the two CPUs."""
    raw = demo_config(store=str(store), plugins=["tests.support.slow_ops"])
    raw["input"]["paths"] = [str(small_files(store.parent / "input") / "*.jsonl.gz")]
    raw["stages"] = [
        {"op": "heuristics"},
        {"op": "slow_copy", "config": {"seconds_per_batch": 1.0}},
        {"op": "exact_dedup"},
        raw["stages"][2],  # the demo's filter
    ]
    raw["execution"] = {"wave_mb": 0.001, "part_rows": 40, "batch_rows": 40}
    return raw


def tamis(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_json(store: Path, run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((store / "runs" / run_id / "run.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def finish(proc: subprocess.Popen[bytes], timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    return text


def kill_driver_when(proc: subprocess.Popen[bytes], store: Path, run_id: str,
                     ready: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    """SIGKILL the `tamis run` driver once ``ready(run.json)`` holds; returns run.json then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = run_json(store, run_id)
        if state and ready(state):
            break
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.1)
    else:
        pytest.fail(f"{what} never happened")
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: its local Ray shares its fate
    proc.wait()
    killed = run_json(store, run_id)
    assert killed is not None
    return killed


def output_table(store: Path, run_id: str) -> pa.Table:
    out = store / "runs" / run_id / "output"
    return pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("part-*.parquet"))])


def test_driver_killed_mid_stage_resumes_without_recomputing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "resume.yaml", resume_config(store))

    def slow_copy_got_going(state: dict[str, Any]) -> bool:
        slow = next(s for s in state["stages"] if s["name"] == "slow_copy")
        return slow["status"] == "running" and slow["waves_done"] >= 2

    proc = tamis("run", str(config), "--run-id", "r1")
    killed_at = kill_driver_when(proc, store, "r1", slow_copy_got_going, 240, "the slow stage getting going")
    waves_before = next(s for s in killed_at["stages"] if s["name"] == "slow_copy")["waves_done"]
    assert 2 <= waves_before < next(s for s in killed_at["stages"] if s["name"] == "slow_copy")["waves_total"]

    log = finish(tamis("run", str(config), "--run-id", "r1"))
    state = run_json(store, "r1")
    status = {s["name"]: s["status"] for s in state["stages"]}
    # read -> heuristics -> slow_copy run chained (jobs/chain.py): each wave streams through
    # all three and commits in all three, so none of the waves done before the kill runs again
    assert status["read"] == status["heuristics"] == status["slow_copy"] == "committed", status
    for name in ("read", "heuristics", "slow_copy"):
        skipped = [e["msg"] for e in state["events"] if e["msg"].startswith(f"{name}: wave") and "skipped" in e["msg"]]
        assert len(skipped) >= waves_before, state["events"]
    assert "committed earlier" in log  # the user is told what was reused

    # The same pipeline uninterrupted, in a fresh store, without the sleep, in this process
    reference_store = tmp_path / "reference"
    raw = resume_config(reference_store)
    raw["stages"][1]["config"]["seconds_per_batch"] = 0
    run_serially(write_config(tmp_path / "reference.yaml", raw), "r1")
    resumed, uninterrupted = output_table(store, "r1"), output_table(reference_store, "r1")
    assert resumed.num_rows > 0
    assert resumed.equals(uninterrupted)


def test_tamis_stop_ends_a_running_run_at_a_wave_boundary(tmp_path: Path) -> None:
    """On a real Ray, with waves streaming through a chain: `tamis stop` ends the run at its
    next wave boundary (exit 4, status stopped, committed waves kept, no output). Resuming
    it is tests/unit/test_stop_request.py's."""
    store = tmp_path / "store"
    config = write_config(tmp_path / "stop.yaml", resume_config(store))
    proc = tamis("run", str(config), "--run-id", "st")

    def slow_copy_committed_a_wave(state: dict[str, Any]) -> bool:
        return next(s for s in state["stages"] if s["name"] == "slow_copy")["waves_done"] >= 1

    deadline = time.time() + 240
    while not ((state := run_json(store, "st")) and state.get("stages") and slow_copy_committed_a_wave(state)):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.1)
    stop = subprocess.run([sys.executable, "-m", "jobs.cli", "stop", "st", "--store", str(store)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert stop.returncode == 0, stop.stderr
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 4, out.decode(errors="replace")
    state = run_json(store, "st")
    # at the next boundary after the request: a wave of slow_copy, or (when its last waves
    # were done before `tamis stop` had started) the start of a later stage
    assert state["status"] == "stopped" and state["stop_requested"], state["status"]
    assert any(s["status"] != "committed" for s in state["stages"]), [s["status"] for s in state["stages"]]
    assert not (store / "runs" / "st" / "output").exists()
    assert "stopped at a wave boundary as asked (tamis stop)" in out.decode(errors="replace")
