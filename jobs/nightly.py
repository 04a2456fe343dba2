"""Nightly runs: a run id from the date, and the ``latest`` pointer to the newest complete night.

``tamis run CONFIG --nightly`` (or ``--run-id auto``) names the run ``<pipeline>-<YYYY-MM-DD>``
by the UTC date, so running it again the same night resumes (or, once it succeeded,
rewrites nothing new) instead of starting a second run. Each night's output is its own
dated snapshot (``runs/<run-id>/output/`` with its manifest). After a run of a pipeline
with ``input.incremental`` succeeds, ``latest/<pipeline>.json`` is written last, naming the
run, its output and manifest: readers that want the newest complete night read that one
small object. It never moves back to an older night (a rerun of one).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from jobs.store import Store

AUTO = "auto"


def nightly_run_id(pipeline: str, now: dt.datetime | None = None) -> str:
    """``<pipeline>-<YYYY-MM-DD>`` for the UTC date of ``now`` (default: now)."""
    when = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return f"{pipeline}-{when:%Y-%m-%d}"


def choose_run_id(given: str | None, pipeline: str, nightly: bool) -> str:
    """The run id ``tamis run``/``submit`` use: ``--nightly`` or ``--run-id auto`` give the
    night's, else the one given, else the pipeline's name."""
    if nightly or given == AUTO:
        return nightly_run_id(pipeline)
    return given or pipeline


def latest_key(pipeline: str) -> str:
    return f"latest/{pipeline}.json"


def write_latest(store: Store, state: dict[str, Any]) -> dict[str, Any] | None:
    """Point ``latest/<pipeline>.json`` at this succeeded run, unless it names a newer one
    (a later version of the input record); returns what the pointer holds now."""
    output = state.get("output") or {}
    inputs = next(iter((state.get("inputs") or {}).values()), {})
    pointer = {"run_id": state["run_id"], "pipeline": state["pipeline"], "output": output.get("uri"),
               "manifest": output.get("manifest"), "rows": output.get("rows"),
               "input_version": inputs.get("version"), "written_at": round(time.time(), 3)}
    key = latest_key(state["pipeline"])
    current = store.read_json(key)
    if current and current.get("run_id") != pointer["run_id"] and \
            (current.get("input_version") or 0) > (pointer["input_version"] or 0):
        return current
    store.write_json(key, pointer)
    return pointer
