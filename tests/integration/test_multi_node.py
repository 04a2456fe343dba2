"""A real Ray of several nodes on this machine (ray.cluster_utils.Cluster): local paths are
refused unless declared shared; declared shared, a run that loses worker nodes mid-stage
ends with the same output as on one node."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import demo_config, write_config
from tests.integration.test_resume import finish, output_table, resume_config, run_json, tamis
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration


@pytest.fixture
def two_nodes() -> Iterator[str]:
    """A head and one worker node, one CPU each; yields the cluster's address."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def test_local_paths_are_refused_on_two_nodes_unless_shared(two_nodes: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "demo.yaml", demo_config(store=str(store)))
    refused = tamis("run", str(config), "--address", two_nodes, "--run-id", "two")
    out, _ = refused.communicate(timeout=300)
    text = out.decode(errors="replace")
    assert refused.returncode == 2, text
    assert "the cluster has 2 nodes" in text and f"store {store}" in text and "shared_filesystem" in text
    assert not (store / "runs").exists()  # nothing started
    # declared shared (on one machine every node sees the same directories), the run goes
    # on: test_worker_nodes_lost_mid_stage_cost_only_their_tasks runs so, to a one-node output


def test_worker_nodes_lost_mid_stage_cost_only_their_tasks(tmp_path: Path) -> None:
    """A head and two worker nodes. One worker node is lost (its raylet and workers killed)
    while a chained map stage (``slow_copy``) runs tasks on the nodes, the other while the
    reduce side of a shuffle (``slow_group``, a partition per CPU) runs on the two nodes
    left. Ray runs the lost tasks again on the nodes left, the scheduler (on the driver's
    node) goes on, and the output holds every document once, as a one-node run's."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
    cluster.wait_for_nodes()
    pids = {kind: tmp_path / f"pids-{kind}" for kind in ("map", "group")}
    for folder in pids.values():
        folder.mkdir()
    store = tmp_path / "store"
    raw = slow_config(store)
    # a map sleeps per batch (many short tasks); a group per call (one long one per partition)
    raw["stages"][1]["config"].update(pid_dir=str(pids["map"]), seconds_per_batch=0.2)
    raw["stages"][2]["config"].update(pid_dir=str(pids["group"]), seconds_per_batch=4)
    raw["store_options"] = {"shared_filesystem": True}
    try:
        proc = tamis("run", str(write_config(tmp_path / "lost.yaml", raw)), "--address", cluster.address,
                     "--run-id", "lost")
        for kind, worker in zip(("map", "group"), workers):
            deadline = time.time() + 300
            while not (len(os.listdir(pids[kind])) >= 2 and (state := run_json(store, "lost"))
                       and _slow_stage_got_going(state, kind)):
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.1)
            cluster.remove_node(worker, allow_graceful=False)
        log = finish(proc, timeout=600)
    finally:
        cluster.shutdown()
    for kind, folder in pids.items():
        dead = [int(p) for p in os.listdir(folder) if not _alive(int(p))]
        assert dead, f"no process running the {kind} stage died with its node: the test proved nothing"
    state = run_json(store, "lost")
    assert state["status"] == "succeeded", log
    reference = tmp_path / "reference"
    clean = slow_config(reference)
    clean["stages"][1]["config"]["seconds_per_batch"] = clean["stages"][2]["config"]["seconds_per_batch"] = 0
    run_serially(write_config(tmp_path / "ref.yaml", clean), "lost")
    lost, one = output_table(store, "lost"), output_table(reference, "lost")
    ids = lost["id"].to_pylist()
    assert len(ids) == len(set(ids)), "a document was written twice"
    assert lost.num_rows > 0 and lost.sort_by("id").equals(one.sort_by("id"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def slow_config(store: Path) -> dict[str, Any]:
    """test_resume's pipeline with a slow group (``slow_group``, by source) after its slow map."""
    raw = resume_config(store)
    raw["stages"].insert(2, {"op": "slow_group", "config": {}})
    return raw


def _slow_stage_got_going(state: dict[str, Any], kind: str) -> bool:
    """A map wave committed, or the group stage running (its reduce side: the pids are in)."""
    name = "slow_copy" if kind == "map" else "slow_group"
    slow = next(s for s in state["stages"] if s["name"] == name)
    return slow["waves_done"] >= 1 if kind == "map" else slow["status"] == "running"


def _ancestors(pid: int) -> list[int]:
    """``pid``'s parent, its parent, ... (Linux /proc)."""
    chain = []
    while pid > 1:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            break
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        chain.append(pid)
    return chain


def test_a_worker_node_lost_during_a_fit_costs_only_the_fit_task(tmp_path: Path) -> None:
    """A head that runs no task (0 CPUs: the scheduler actor needs none) and two worker
    nodes. The node running a fit (``slow_word_totals``) is lost mid-fit; Ray runs the fit
    task again on the other node, and the run ends with a one-node run's output."""
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1), cluster.add_node(num_cpus=1)]
    cluster.wait_for_nodes()
    pids = tmp_path / "pids"
    pids.mkdir()
    store = tmp_path / "store"

    def fit_config(store: Path, seconds: float) -> dict[str, Any]:
        raw = demo_config(store=str(store), plugins=["tests.support.slow_ops"])
        raw["stages"] = [raw["stages"][0], {"op": "heuristics"},  # the demo's exact_dedup, then
                         {"op": "slow_word_totals", "config": {"seconds": seconds, "pid_dir": str(pids)}},
                         {"op": "test_word_share"}, raw["stages"][2]]
        return raw

    raw = fit_config(store, 8.0)
    raw["store_options"] = {"shared_filesystem": True}
    try:
        proc = tamis("run", str(write_config(tmp_path / "fit.yaml", raw)), "--address", cluster.address,
                     "--run-id", "fit")
        deadline = time.time() + 300
        while not os.listdir(pids):
            assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.1)
        fitting = int(os.listdir(pids)[0])
        raylets = {w.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid: w for w in workers}
        [node] = [raylets[p] for p in _ancestors(fitting) if p in raylets]
        cluster.remove_node(node, allow_graceful=False)
        log = finish(proc, timeout=600)
    finally:
        cluster.shutdown()
    assert not _alive(fitting), "the fitting process outlived its node: the test proved nothing"
    assert len(os.listdir(pids)) >= 2, "the fit did not run again"
    state = run_json(store, "fit")
    assert state["status"] == "succeeded", log
    reference = tmp_path / "reference"
    run_serially(write_config(tmp_path / "ref.yaml", fit_config(reference, 0)), "fit")
    lost, one = output_table(store, "fit"), output_table(reference, "fit")
    assert lost.num_rows > 0 and lost.sort_by("id").equals(one.sort_by("id"))
