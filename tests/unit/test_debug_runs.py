"""Debugging runs without a Ray runtime: `--until STAGE` and `--sample FRACTION` (the input
sample by id hash), through the real scheduler, operators and store run serially."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from jobs import cli, execute
from jobs.scheduler import RunScheduler, stages_until
from jobs.pipeline_load import load_pipeline
from operators.io.sample import sample_mask
from tests.support.serial_ray import SerialRay
from tests.unit.test_scheduler import _kept_ids, _pipeline


@pytest.fixture(autouse=True)
def serial(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(execute, "ray", SerialRay())


def _read_rows(state: dict[str, Any], store_root: Path) -> set[tuple[str, str]]:
    """(id, source) of every document and rejected row the read stage wrote."""
    import pyarrow.parquet as pq

    read = next(s for s in state["stages"] if s["name"] == "read")
    files = (store_root / "stages").glob(f"read-{read['fingerprint']}/wave-*/**/*.parquet")
    tables = [pq.read_table(f, columns=["id", "source"]) for f in files]
    return {(i, s) for t in tables for i, s in zip(t["id"].to_pylist(), t["source"].to_pylist())}


def test_until_stops_after_the_stage_and_a_later_run_goes_on_to_the_same_output(tmp_path: Path) -> None:
    clean = RunScheduler(_pipeline(tmp_path / "clean", "dedup.yaml").spec, "r").run()
    pipeline = _pipeline(tmp_path / "until", "dedup.yaml")
    stopped = RunScheduler(pipeline.spec, "r", until="minhash_dedup").run()
    assert stopped["status"] == "stopped" and stopped["stopped_after"] == "minhash_dedup"
    assert stopped["output"] is None and stopped["stages"][-1]["name"] == "minhash_dedup.apply"
    assert not (tmp_path / "until" / "store" / "runs" / "r" / "output").exists()
    done = RunScheduler(pipeline.spec, "r").run()
    statuses = {s["name"]: s["status"] for s in done["stages"]}
    assert statuses["minhash_dedup.keep"] == "cached" and statuses["filter"] == "committed"
    assert _kept_ids(done) == _kept_ids(clean)


def test_until_names_a_primitive_a_composite_or_read(tmp_path: Path) -> None:
    stages = _pipeline(tmp_path, "dedup.yaml").stages
    names = [s.name for s in stages]
    assert stages_until(stages, "read") == 0
    assert stages_until(stages, "minhash_dedup.signature") == names.index("minhash_dedup.signature") + 1
    assert stages_until(stages, "minhash_dedup") == names.index("minhash_dedup.apply") + 1
    with pytest.raises(ValueError, match=r"no such stage; the stages are read, .*minhash_dedup.signature.*"
                                         r"composite's name: .*minhash_dedup"):
        stages_until(stages, "minhash")


def test_until_read_runs_the_read_stage_alone(tmp_path: Path) -> None:
    state = RunScheduler(_pipeline(tmp_path, "demo.yaml").spec, "r", until="read").run()
    assert [s["name"] for s in state["stages"]] == ["read"] and state["status"] == "stopped"


def test_a_sample_is_the_same_every_time_and_another_for_another_seed(tmp_path: Path) -> None:
    def sampled(name: str, seed: int) -> tuple[set[tuple[str, str]], dict[str, Any]]:
        _pipeline(tmp_path / name, "demo.yaml")
        spec = load_pipeline(str(tmp_path / name / "demo.yaml"),
                             ["input.sample.fraction=0.3", f"input.sample.seed={seed}"]).spec
        state = RunScheduler(spec, "s", until="read").run()
        return _read_rows(state, tmp_path / name / "store"), state

    first, state = sampled("a", 0)
    again, _ = sampled("b", 0)
    other, _ = sampled("c", 7)
    full = RunScheduler(_pipeline(tmp_path / "full", "demo.yaml").spec, "f", until="read").run()
    everything = _read_rows(full, tmp_path / "full" / "store")
    assert first == again and first != other
    assert first < everything and 0.2 < len(first) / len(everything) < 0.4
    # spread over every input file (each is one source), not the first files read
    assert {s for _, s in first if s} == {s for _, s in everything if s} and len({s for _, s in everything}) > 2
    assert state["stages"][0]["rows_in"] < full["stages"][0]["rows_in"]


def test_sample_mask_is_nested_and_near_its_fraction() -> None:
    ids = pa.array([f"doc-{i}" for i in range(20_000)])
    small, large = (np.asarray(sample_mask(ids, f, 3)) for f in (0.05, 0.2))
    assert not (small & ~large).any()  # a smaller sample lies inside a larger one
    assert abs(small.mean() - 0.05) < 0.01 and abs(large.mean() - 0.2) < 0.02
    assert np.asarray(sample_mask(ids, 1.0, 3)).all()


def test_cli_refuses_a_bad_sample_or_until_before_starting_ray(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = str(tmp_path / "dedup.yaml")
    _pipeline(tmp_path, "dedup.yaml")
    assert cli.main(["run", config, "--sample", "1.5"]) == 2
    assert "--sample 1.5: give a fraction above 0 and at most 1" in capsys.readouterr().err
    assert cli.main(["run", config, "--until", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --until 'nope': no such stage; the stages are read, exact_dedup.hash")
    assert len(err.splitlines()) == 1
