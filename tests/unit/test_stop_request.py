"""`tamis stop`: a run asked to stop ends at its next wave boundary, keeps what it committed,
and its rerun resumes to the output of an uninterrupted run (in-process, without Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jobs import cli
from jobs.ledger import StageLedger
from jobs.stop_request import request_stop, stop_key
from jobs.store import Store
from tests.conftest import demo_config, write_config
from tests.integration.test_resume import output_table
from tests.support.serial_ray import run_serially


def waves_config(tmp_path: Path, store: Path) -> Path:
    raw = demo_config(store=str(store))
    raw["execution"] = {"wave_mb": 0.05, "part_rows": 40, "batch_rows": 40}  # several waves per stage
    return write_config(tmp_path / f"{store.name}.yaml", raw)


def test_a_stopped_run_keeps_its_waves_and_its_rerun_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_dir = tmp_path / "store"
    config = waves_config(tmp_path, store_dir)
    store = Store(str(store_dir))
    report = StageLedger._report

    def stop_after_the_first_wave(self: StageLedger, entries: Any, by_wave: Any, n: int, total: int, reused: int) -> None:
        if len(by_wave) == 1:  # `tamis stop` from another terminal, right after the first wave commits
            assert cli.main(["stop", "s", "--store", str(store_dir)]) == 0
        report(self, entries, by_wave, n, total, reused)

    monkeypatch.setattr(StageLedger, "_report", stop_after_the_first_wave)
    stopped = run_serially(config, "s")
    assert stopped["status"] == "stopped" and stopped["stop_requested"]
    head = stopped["stages"][0]
    assert head["status"] == "stopped" and 1 <= head["waves_done"] < head["waves_total"], head
    assert not (store_dir / "runs" / "s" / "output").exists()
    assert "stopped at a wave boundary as asked" in stopped["events"][-1]["msg"]
    with pytest.raises(ValueError, match="not running"):
        request_stop(store, "s")

    monkeypatch.setattr(StageLedger, "_report", report)
    resumed = run_serially(config, "s")
    assert resumed["status"] == "succeeded" and not store.exists(stop_key("s"))
    skipped = [e["msg"] for e in resumed["events"] if "committed earlier, skipped" in e["msg"]]
    assert skipped  # the wave committed before the stop is not run again
    run_serially(waves_config(tmp_path, tmp_path / "reference"), "s")
    assert output_table(store_dir, "s").equals(output_table(tmp_path / "reference", "s"))


def test_stop_names_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["stop", "nope", "--store", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    Store(str(tmp_path)).write_json("runs/done/run.json", {"status": "succeeded"})
    assert cli.main(["stop", "done", "--store", str(tmp_path)]) == 2
    assert "not running (status: succeeded)" in capsys.readouterr().err
