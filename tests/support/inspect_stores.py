"""Stores holding real runs, built without Ray, for the tests of `tamis show | diff | explain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from jobs import execute
from jobs.checkpoint import commit_key, stage_prefix
from jobs.part_reader import read_part
from jobs.checkpoint import run_json_key
from jobs.scheduler import RunScheduler
from jobs.pipeline_load import load_pipeline
from jobs.store import Store
from tests.conftest import REPO, SAMPLE
from tests.support.serial_ray import SerialRay

WORD_COUNT_RULE = "stages.2.config.rules.1.keep"
"""The demo filter's `quality_word_count >= 50` rule, as a `--set` path."""


def write_config(folder: Path, config: str, store: str, **changes: Any) -> Path:
    """configs/<config> on the sample corpus with its store at ``store``; the file written."""
    raw = yaml.safe_load((REPO / "configs" / config).read_text())
    raw["input"]["paths"] = [str(SAMPLE / "*.jsonl.gz")]
    raw.update(store=store, **changes)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / config
    path.write_text(yaml.safe_dump(raw))
    return path


class FailingExecutor:
    """jobs.execute, except that running any work raises (a driver killed before the stage ran)."""

    def __getattr__(self, name: str) -> Any:
        real = getattr(execute, name)
        if not name.startswith("run_"):
            return real

        def fail(*args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt(f"killed at {name}")
        return fail


def run_without_ray(config: Path, run_id: str, overrides: list[str] | None = None,
                    executor: Any = None) -> dict[str, Any]:
    """Run ``config`` with ``overrides`` (as `--set`) in this process, Ray Data run serially;
    the final state (a run killed by ``executor`` leaves its run.json as it was)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(execute, "ray", SerialRay())
        pipeline = load_pipeline(str(config), overrides)
        scheduler = RunScheduler(pipeline.spec, run_id, executor=executor)
        if executor is None:
            return scheduler.run()
        with pytest.raises(KeyboardInterrupt):
            scheduler.run()
        return Store(pipeline.spec.store).read_json(run_json_key(run_id)) or {}


def stage_entry(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in state["stages"] if s["name"] == name)


def stage_table(store: Store, state: dict[str, Any], name: str, rejected: bool = False) -> pa.Table:
    """All the logical rows (or rejected rows) a committed stage's commit names, read directly."""
    entry = stage_entry(state, name)
    commit = store.read_json(commit_key(stage_prefix(name, entry["fingerprint"])))
    tables = [read_part(store, f["key"]) for f in commit["rejected" if rejected else "files"]]
    return pa.concat_tables(tables, promote_options="default")
