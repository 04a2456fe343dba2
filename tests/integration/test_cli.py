"""The command line as a user meets it: validate, operators, status, and a refused second driver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.cli import main
from tests.conftest import REPO, demo_config, write_config
from tests.integration.conftest import run_config

pytestmark = pytest.mark.integration


def test_validate_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert main(["validate", "configs/demo.yaml"]) == 0
    assert "read -> exact_dedup.hash -> exact_dedup.keep -> heuristics -> filter -> write" in capsys.readouterr().out
    raw = demo_config()
    raw["stages"][0]["config"] = {"scope": "everywhere"}
    raw["stages"][1]["op"] = "heuristic"
    bad = write_config(tmp_path / "bad.yaml", raw)
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stages[0].config.scope" in err and "'everywhere'" in err
    assert "stages[1].op" in err and "unknown operator 'heuristic'" in err and "heuristics" in err


def test_operators_listing_and_detail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operators"]) == 0
    listing = capsys.readouterr().out
    for name in ("exact_dedup", "heuristics", "filter"):
        assert name in listing
    assert main(["operators", "filter"]) == 0
    detail = capsys.readouterr().out
    assert "rules" in detail and "expr" in detail
    assert main(["operators", "nope"]) == 2
    assert "known operators" in capsys.readouterr().err


def test_status_shows_a_failed_stage_with_its_error(ray_local: None, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    raw = demo_config(store=str(tmp_path / "store"), plugins=["tests.support.slow_ops"])
    raw["stages"] = [{"op": "heuristics"}, {"op": "explode", "config": {"message": "planted failure 42"}}]
    with pytest.raises(Exception, match="planted failure 42"):
        run_config(tmp_path, raw, run_id="broken")
    assert main(["status", "broken", "--store", str(tmp_path / "store")]) == 1
    out = capsys.readouterr().out
    assert "run broken (demo): failed" in out
    # heuristics and explode run chained: the stage that raised is the one shown failed
    assert "heuristics" in out and "stopped" in out and "heuristics failed" not in out
    assert "explode failed" in out and "planted failure 42" in out
    assert main(["status", "nope", "--store", str(tmp_path / "store")]) == 2
    assert "runs there: broken" in capsys.readouterr().err


def test_second_driver_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "demo.yaml", demo_config(store=str(store)))
    lock = store / "runs" / "demo" / "locks" / "00000001.json"
    lock.parent.mkdir(parents=True)
    # a live holder: this test process, on this host, with a fresh heartbeat
    lock.write_text(json.dumps({"owner": "x", "host": socket.gethostname(), "pid": os.getpid(),
                                "heartbeat": time.time(), "released": False}))
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert f"already being run by process {os.getpid()}" in proc.stderr
    assert "tamis status demo" in proc.stderr
    assert "Ray: starting a local Ray" in proc.stderr.splitlines()[0]
    assert "Token authentication" not in proc.stderr  # Ray's warning, silenced for a Ray tamis starts
    assert not (store / "stages").exists()  # nothing was written
