"""jobs.execute.gpu_actor_cpus: CPUs per GPU actor derived from the cluster's CPUs per GPU."""

from __future__ import annotations

import logging

import pytest

from jobs import execute
from operators.base import ResourceHint


@pytest.mark.parametrize(("cpus", "gpus", "share", "expected"), [
    (16, 1, 0.25, 2.0),   # an H200 node: 4 actors x 2 CPUs, 8 CPUs left to read and tokenize
    (8, 1, 0.25, 1.0),
    (2, 1, 0.25, 0.25),   # never more than the node can give while tasks still run
    (128, 8, 0.25, 2.0),  # at most 2 each
    (16, 1, 1.0, 2.0),
])
def test_half_the_cpus_per_gpu_shared_by_its_actors(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                    cpus: int, gpus: int, share: float, expected: float) -> None:
    monkeypatch.setattr(execute, "cluster_cpus", lambda: cpus)
    monkeypatch.setattr(execute, "cluster_gpus", lambda: float(gpus))
    with caplog.at_level(logging.INFO, logger="jobs.execute"):
        need = execute.gpu_actor_cpus(ResourceHint(num_cpus=1, num_gpus=share, stateful=True), "embed.encode")
    assert need.num_cpus == expected and need.num_gpus == share and need.stateful
    assert need.num_cpus * (1 / share) * gpus <= cpus / 2 or need.num_cpus == 0.25
    assert "embed.encode" in caplog.text and "CPUs each" in caplog.text
