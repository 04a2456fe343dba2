"""Every shipped configs/*.yaml validates against the operator registry."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
import yaml

from jobs.pipeline_load import load_pipeline
from jobs.store import is_s3

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def local_inputs_exist(path: Path) -> bool:
    """True when every input pattern of ``path`` is local and matches a file from the repo root."""
    patterns = (yaml.safe_load(path.read_text()).get("input") or {}).get("paths") or []
    return bool(patterns) and all(
        not is_s3(p) and glob.glob(str(REPO / p) if not Path(p).is_absolute() else p)
        for p in patterns)


def test_there_are_configs() -> None:
    assert CONFIGS, f"no configs under {REPO / 'configs'}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    pipeline = load_pipeline(str(path), check_io=False)
    assert pipeline.stages, f"{path.name} plans no stage"
    assert len({s.name for s in pipeline.stages}) == len(pipeline.stages)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_with_io_checks(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not local_inputs_exist(path):
        pytest.skip(f"{path.name}: inputs are remote or absent from this checkout")
    monkeypatch.chdir(REPO)
    load_pipeline(str(path), check_io=True)


def test_demo_plan() -> None:
    pipeline = load_pipeline(str(REPO / "configs" / "demo.yaml"), check_io=False)
    assert [s.name for s in pipeline.stages] == [
        "exact_dedup.hash", "exact_dedup.keep", "heuristics", "filter"]
