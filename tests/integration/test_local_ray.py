"""`tamis up`, a run that attaches to it instead of starting its own Ray, and `tamis down`:
a real `ray start --head` on this machine, driven through the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import local_ray
from tests.conftest import REPO, demo_config, write_config
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def tamis(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_runs_attach_to_the_ray_tamis_up_started(tmp_path: Path) -> None:
    if local_ray.running_address():
        pytest.skip("a Ray started with `ray start` is already running on this machine")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", local_ray.AUTH_MODE)}
    config = str(write_config(tmp_path / "demo.yaml", demo_config(store=str(tmp_path / "store"))))
    up = tamis("up", "--num-cpus", "2", "--port", str(free_port()), env=env)
    try:
        assert up.returncode == 0 and up.stdout.startswith("Ray is up at "), up.stderr
        address = local_ray.running_address()
        assert address and address in up.stdout
        assert "already running" in tamis("up", env=env).stdout

        first = tamis("run", config, "--until", "exact_dedup", env=env)
        assert first.returncode == 0, first.stderr
        lines = first.stderr.splitlines()
        assert f"Ray: attached to the Ray at {address} started by `tamis up`" in lines[0]
        assert "Token authentication" not in first.stderr + first.stdout  # Ray's warning, silenced for tamis's Ray
        assert "stopped after exact_dedup as asked" in first.stdout

        second = tamis("run", config, env=env)
        assert second.returncode == 0, second.stderr
        assert "attached to the Ray" in second.stderr.splitlines()[0]
        assert "exact_dedup.keep (cached)" in second.stdout and "documents in: 495   out: 416" in second.stdout
    finally:
        down = tamis("down", env=env)
    assert down.returncode == 0 and down.stdout.strip() == f"stopped the Ray at {address}", down.stderr
    assert local_ray.running_address() is None
    assert tamis("down", env=env).stdout.strip() == "no Ray started by `tamis up` is running"
