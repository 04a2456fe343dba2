"""The scheduler actor killed mid-run (`ray.kill`, as an operator or an OOM killer would):
its `tamis run` fails saying so, and a new `tamis run` of the same run id takes over from
the store, redoing only the waves not committed, to the same output as an uninterrupted run.
(The scheduler's node lost is the driver's node lost: the scheduler is pinned to it,
jobs/scheduler.py `start_actor`, so that case is test_resume's driver kill.)"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_config
from tests.integration.test_resume import finish, output_table, resume_config, run_json, tamis
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration


def test_a_killed_scheduler_actor_is_taken_over_by_the_next_run(tmp_path: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from jobs.scheduler import ACTOR_NAMESPACE, actor_name

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    store = tmp_path / "store"
    config = write_config(tmp_path / "killed.yaml", resume_config(store))

    def slow_copy_got_going(state: dict[str, Any]) -> bool:
        slow = next(s for s in state["stages"] if s["name"] == "slow_copy")
        return slow["status"] == "running" and slow["waves_done"] >= 2

    try:
        proc = tamis("run", str(config), "--address", cluster.address, "--run-id", "k")
        deadline = time.time() + 240
        while not ((state := run_json(store, "k")) and state.get("stages") and slow_copy_got_going(state)):
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.1)
        # from a process of its own, as an operator would: this one stays off the cluster (a
        # driver's Ray state left in the test process outlives ray.shutdown)
        kill = (f"import ray; ray.init(address={cluster.address!r}); "
                f"ray.kill(ray.get_actor({actor_name('k')!r}, namespace={ACTOR_NAMESPACE!r}), no_restart=True)")
        subprocess.run([sys.executable, "-c", kill], check=True, timeout=120, capture_output=True)
        out, _ = proc.communicate(timeout=120)
        text = out.decode(errors="replace")
        assert proc.returncode == 1, text
        assert "error: run k lost its scheduler" in text and "run the same command again to resume" in text, text
        lost = run_json(store, "k")
        assert lost["status"] == "failed" and "died mid-run" in lost["error"], lost["status"]
        waves_before = next(s for s in lost["stages"] if s["name"] == "slow_copy")["waves_done"]

        log = finish(tamis("run", str(config), "--address", cluster.address, "--run-id", "k"))
    finally:
        cluster.shutdown()
    state = run_json(store, "k")
    assert state["status"] == "succeeded" and state["attempt"] == 2, log
    skipped = [e["msg"] for e in state["events"] if e["msg"].startswith("slow_copy: wave") and "skipped" in e["msg"]]
    assert len(skipped) >= waves_before >= 2, state["events"]

    reference = tmp_path / "reference"
    raw = resume_config(reference)
    raw["stages"][1]["config"]["seconds_per_batch"] = 0
    run_serially(write_config(tmp_path / "reference.yaml", raw), "k")
    taken_over, uninterrupted = output_table(store, "k"), output_table(reference, "k")
    assert taken_over.num_rows > 0 and taken_over.equals(uninterrupted)
