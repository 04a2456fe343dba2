"""Shared fixtures: repository paths, the sample corpus's ground truth, pipeline builders."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

# Every `tamis run` a test starts (in-process or as a subprocess) starts its own local Ray:
# without this it would attach to a Ray left running on the machine (`tamis up`). The test of
# attaching removes it for its own subprocesses.
os.environ["RAY_ADDRESS"] = "local"

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SHARED_DATA = REPO.parent / "shared" / "data" / "devdocs.jsonl.gz"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sample_expected() -> dict[str, Any]:
    return json.loads((SAMPLE / "expected.json").read_text())


@pytest.fixture
def shared_devdocs() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is absent (only CI and the dev machines have ../shared)")
    return SHARED_DATA


def demo_config(**changes: Any) -> dict[str, Any]:
    """The demo pipeline as a dict, with top-level keys replaced by ``changes``."""
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["input"]["paths"] = [str(SAMPLE / "*.jsonl.gz")]
    raw.update(changes)
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(autouse=True, scope="session")
def _workers_import_tests() -> None:
    """Ray workers inherit the environment: let them import tests.support plugins."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
