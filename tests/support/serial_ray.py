"""The part of Ray that jobs/execute.py uses, run serially in this process, for unit tests.

``monkeypatch.setattr(jobs.execute, "ray", SerialRay())`` lets the scheduler run a whole
pipeline without a Ray runtime: every ``map_batches`` applies its function (or builds its
callable class once, as an actor would) to one row of items at a time, in order; a remote
task is a call. The operators, store, commits and the execution code are the real ones;
only the distribution is gone. Integration tests run the same pipelines on a real Ray.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyarrow as pa


class SerialDataset:
    """Rows that ``map_batches`` transforms eagerly, one input row per batch."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self._context = SimpleNamespace(execution_options=SimpleNamespace())

    def map_batches(self, fn: Any, *, batch_size: int = 1, fn_kwargs: dict[str, Any] | None = None,
                    fn_constructor_kwargs: dict[str, Any] | None = None, **_: Any) -> "SerialDataset":
        assert batch_size == 1, "jobs/execute.py hands every task one item"
        call = fn(**(fn_constructor_kwargs or {})) if isinstance(fn, type) else fn
        kwargs = {} if isinstance(fn, type) else (fn_kwargs or {})
        out: list[dict[str, Any]] = []
        for row in self.rows:
            out += call(pa.Table.from_pylist([row]), **kwargs).to_pylist()
        return SerialDataset(out)

    def take_all(self) -> list[dict[str, Any]]:
        return self.rows

    def iter_batches(self, **_: Any) -> Any:
        """The rows in order, one batch each (Ray Data may give them in any order: an item's
        rows travel together, jobs/wave_stream.py)."""
        return (pa.Table.from_pylist([row]) for row in self.rows)


class _Task:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def options(self, **_: Any) -> "_Task":
        return self

    def remote(self, *args: Any) -> Any:
        return self.fn(*args)


class SerialRay:
    """Stands in for the ``ray`` module inside jobs/execute.py."""

    def __init__(self, cpus: int = 2) -> None:
        self.cpus = cpus
        self.data = SimpleNamespace(from_items=lambda items, **_: SerialDataset(list(items)),
                                    ActorPoolStrategy=lambda **_: None, TaskPoolStrategy=lambda **_: None)

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": float(self.cpus)}

    def nodes(self) -> list[dict[str, Any]]:
        return [{"Alive": True, "Resources": {"CPU": float(self.cpus)}}]

    def remote(self, fn: Any) -> _Task:
        return _Task(fn)

    def get(self, value: Any) -> Any:
        return value


def run_serially(config: Any, run_id: str) -> dict[str, Any]:
    """Run the pipeline at ``config`` (a YAML path) in this process without Ray; its final
    state. The reference an integration test compares a killed and resumed real run with:
    the same operators, store and execution code give the same output, without a second
    Ray start."""
    from jobs import execute
    from jobs.scheduler import RunScheduler
    from jobs.pipeline_load import load_pipeline

    real = execute.ray
    execute.ray = SerialRay()
    try:
        return RunScheduler(load_pipeline(str(config)).spec, run_id).run()
    finally:
        execute.ray = real
