"""`tamis submit` against a real `ray start --head` with the dashboard on loopback (token
authentication on, as Ray 2.60 starts it): refused inputs start nothing; a submitted run is
followed to its end with --wait; submitting a run that is still running attaches to it; tamis logs
prints (or follows) the latest job's log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, demo_config, write_config
from tests.integration.conftest import free_port
from tests.integration.test_resume import output_table
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration


@pytest.fixture
def head(tmp_path: Path) -> Iterator[str]:
    """A Ray head with the Jobs API, every port its own free one (another Ray on the machine
    keeps its defaults), stopped (and only it) after; yields the Jobs API address."""
    dashboard = free_port()
    ports = [f"--port={free_port()}", f"--dashboard-port={dashboard}", f"--ray-client-server-port={free_port()}",
             f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", *ports,
                             "--include-dashboard=true", "--num-cpus=2", "--disable-usage-stats"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"{address}/api/version", timeout=2).status_code < 500:  # 401 without a token
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, "ray start --head exited"
            time.sleep(1)
        else:
            pytest.fail("the head's Jobs API never answered")
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # --block: stops the processes it started
        try:
            proc.wait(timeout=3)  # it rarely stops by itself (2.60): then the group is killed
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the head is left
        except ProcessLookupError:
            pass
        proc.wait()


def tamis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def submit(*args: str) -> subprocess.CompletedProcess[str]:
    return tamis_cli("submit", *args)


def test_bad_submissions_start_nothing(tmp_path: Path) -> None:
    demo = str(REPO / "configs" / "demo.yaml")
    local = submit(demo, "--address", "http://127.0.0.1:9")
    assert local.returncode == 2 and "local paths" in local.stderr and "shared_filesystem" in local.stderr
    nobody = submit(demo, "--address", f"http://127.0.0.1:{free_port()}", "--set", "store_options.shared_filesystem=true")
    assert nobody.returncode == 2 and "no Ray Jobs API answers at" in nobody.stderr
    invalid = submit(demo, "--set", "stages.0.op=no_such_operator")
    assert invalid.returncode == 2 and "no_such_operator" in invalid.stderr


def test_a_submitted_run_is_followed_to_the_end_and_a_second_submission_attaches(head: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "demo.yaml", demo_config(
        store=str(store), store_options={"shared_filesystem": True}))  # one machine: every node sees it
    first = submit(str(config), "--address", head, "--run-id", "sub")
    assert first.returncode == 0 and "as job tamis-sub-1" in first.stdout, first.stderr
    second = submit(str(config), "--address", head, "--run-id", "sub", "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already" in second.stdout and "attached to it, nothing new submitted" in second.stdout
    assert "job tamis-sub-1: SUCCEEDED" in second.stdout and "documents in: 495" in second.stdout

    reference = tmp_path / "reference"
    run_serially(write_config(tmp_path / "ref.yaml", demo_config(store=str(reference))), "sub")
    assert output_table(store, "sub").sort_by("id").equals(output_table(reference, "sub").sort_by("id"))

    again = submit(str(config), "--address", head, "--run-id", "sub", "--wait")  # ended: a new job, all cached
    assert again.returncode == 0 and "as job tamis-sub-2" in again.stdout and "job tamis-sub-2: SUCCEEDED" in again.stdout
    logs = tamis_cli("logs", "sub", "--address", head)  # the latest job's log
    assert logs.returncode == 0 and "job tamis-sub-2 of run sub (succeeded)" in logs.stderr, logs.stderr
    assert "read: committed earlier" in logs.stdout and "run sub succeeded" in logs.stdout
    followed = tamis_cli("logs", "sub", "--address", head, "--follow")
    assert followed.returncode == 0 and "job tamis-sub-2: SUCCEEDED" in followed.stderr
    missing = tamis_cli("logs", "nope", "--address", head)
    assert missing.returncode == 2 and "no job of run 'nope'" in missing.stderr
