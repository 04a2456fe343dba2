"""Kill a Ray worker process mid map stage: the run completes, every document exactly once."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import demo_config
from tests.integration.conftest import read_output, read_rejected, run_config

pytestmark = pytest.mark.integration


def fault_config(store: Path, pid_dir: Path) -> dict[str, Any]:
    raw = demo_config(store=str(store), plugins=["tests.support.slow_ops"])
    slow: dict[str, Any] = {"op": "slow_copy", "config": {"seconds_per_batch": 0.3, "pid_dir": str(pid_dir)}}
    raw["stages"] = [{"op": "heuristics"}, slow, {"op": "exact_dedup"}, raw["stages"][2]]
    raw["execution"] = {"wave_mb": 0.2, "part_rows": 40, "batch_rows": 20}
    return raw


def kill_first_worker(pid_dir: Path, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first process that reports running the slow stage (not this one)."""
    while not stop.is_set():
        for name in os.listdir(pid_dir):
            pid = int(name)
            if pid != os.getpid():
                time.sleep(0.2)  # mid-batch, after it opened its output file
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


def test_killed_worker_loses_and_duplicates_nothing(ray_local: None, tmp_path: Path,
                                                    sample_expected: dict[str, Any]) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=kill_first_worker, args=(pid_dir, killed, stop), daemon=True)
    killer.start()
    try:
        pipeline, state = run_config(tmp_path, fault_config(tmp_path / "store", pid_dir), run_id="fault")
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was killed: the test proved nothing"

    output_ids = read_output(pipeline, state)["id"].to_pylist()
    rejected_ids = read_rejected(pipeline)["id"].to_pylist()
    assert len(output_ids) == len(set(output_ids)), "a document was written twice"
    assert len(output_ids) + len(rejected_ids) == sample_expected["total_lines"], "a document was lost"
    # and the same survivors as a run nobody disturbed
    clean_dir = tmp_path / "clean-pids"
    clean_dir.mkdir()
    clean_pipeline, clean_state = run_config(tmp_path, fault_config(tmp_path / "clean", clean_dir),
                                             run_id="clean")
    assert sorted(output_ids) == sorted(read_output(clean_pipeline, clean_state)["id"].to_pylist())
