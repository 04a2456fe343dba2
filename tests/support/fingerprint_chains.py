"""Fingerprint chains of a composite's parts, planned and chained as jobs/scheduler.py does,
for the tests that check which parts a changed parameter reruns."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from jobs.checkpoint import operator_fingerprint
from jobs.spec import PipelineSpec
from jobs.pipeline_load import PlannedStage, plan_stages

READ = "0123456789abcdef"
"""Stands for the read stage's fingerprint: every chain starts from it."""


def nested(changes: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a nested config dict) with dotted ``changes`` applied."""
    out = copy.deepcopy(base or {})
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def plan(op: str, config: dict[str, Any]) -> tuple[PlannedStage, ...]:
    spec = PipelineSpec(name="t", input={"paths": ["unused.jsonl"]}, stages=[{"op": op, "config": config}])
    stages, problems = plan_stages(spec)
    assert not problems, problems
    return tuple(s for s in stages if s.yaml_index == 0)  # not the id check jobs/ puts before


def part_name(stage: PlannedStage) -> str:
    """The part's suffix (the stage name itself for a part without one)."""
    return stage.name.partition(".")[2] or stage.name


def chain(stages: tuple[PlannedStage, ...]) -> dict[str, str]:
    """Each stage's fingerprint, chained from :data:`READ` as jobs/scheduler.py does."""
    upstream, out = READ, {}
    for stage in stages:
        upstream = operator_fingerprint(stage.operator.name, stage.operator.version, stage.fingerprint_config(),
                                        upstream)
        out[part_name(stage)] = upstream
    return out


def rerun(op: str, base: dict[str, Any], changes: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(parts whose fingerprint changes, the parts in order) when ``changes`` apply to ``base``."""
    before, after = plan(op, base), plan(op, nested(changes, base))
    names = [part_name(s) for s in before]
    assert [part_name(s) for s in after] == names, "this change alters the part list: test it separately"
    old, new = chain(before), chain(after)
    return [n for n in names if old[n] != new[n]], names


def expected(names: list[str], first: str | None) -> list[str]:
    return [] if first is None else names[names.index(first):]


def leaf_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field of ``model`` as a dotted path, sub-configs expanded."""
    out = set()
    for name, field in model.model_fields.items():
        sub = next((t for t in (field.annotation, *getattr(field.annotation, "__args__", ()))
                    if isinstance(t, type) and issubclass(t, BaseModel)), None)
        out |= leaf_paths(sub, f"{prefix}{name}.") if sub else {f"{prefix}{name}"}
    return out
