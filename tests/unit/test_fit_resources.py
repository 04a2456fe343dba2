"""jobs.execute: where a multithreaded fit runs (kmeans.fit asks for a GPU on a cluster with
GPUs, and then reserves the CPUs of a GPU node, not of the largest node)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import execute
from jobs.spec import ResourcesSpec
from operators.embedding.kmeans import KMeansFit

NODES = [
    {"Alive": True, "Resources": {"CPU": 64.0}},               # the largest node: CPUs only
    {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 1.0}},   # a GPU node
    {"Alive": False, "Resources": {"CPU": 96.0, "GPU": 8.0}},  # gone
]


def test_node_cpus_counts_only_alive_nodes_with_enough_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute.ray, "nodes", lambda: NODES)
    assert execute.node_cpus() == 64.0
    assert execute.node_cpus(1.0) == 16.0
    assert execute.node_cpus(2.0) == 1.0  # none: one CPU, as before


@pytest.mark.parametrize(("gpus", "yaml", "expected"), [
    (1.0, {}, (16.0, 1.0)),                 # a GPU and every CPU of the GPU node
    (0.0, {}, (64.0, 0.0)),                 # a CPU cluster: the largest node, no GPU
    (1.0, {"num_gpus": 0}, (64.0, 0.0)),    # the YAML keeps it off the GPUs
    (1.0, {"num_cpus": 4}, (4.0, 1.0)),
])
def test_kmeans_fit_asks_for_a_gpu_where_the_cluster_has_one(monkeypatch: pytest.MonkeyPatch, gpus: float,
                                                             yaml: dict[str, Any], expected: tuple[float, float]) -> None:
    monkeypatch.setattr(execute.ray, "nodes", lambda: NODES)
    monkeypatch.setattr(execute, "cluster_gpus", lambda: gpus)
    asked: dict[str, Any] = {}

    class Remote:
        def options(self, **options: Any) -> "Remote":
            asked.update(options)
            return self

        def remote(self, *args: Any) -> str:
            asked["threads"] = args[-1]
            return "ref"

    monkeypatch.setattr(execute.ray, "remote", lambda fn: Remote())
    monkeypatch.setattr(execute.ray, "get", lambda ref: [])
    execute.run_fit(KMeansFit, None, [], None, 100, None, ResourcesSpec(**yaml))  # type: ignore[arg-type]
    assert (asked["num_cpus"], asked["num_gpus"]) == expected
    assert asked["threads"] == int(expected[0])
