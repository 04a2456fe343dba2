"""`tamis stop RUN`: a request in the store that a running run stops at its next wave boundary.

The request is a small JSON object at ``runs/<run-id>/stop.json``. The run's scheduler
looks for it after every committed wave and before every stage (one store read each, a
HEAD on S3), and ends the run as ``stopped``: what was committed stays, nothing is half
written, and the next ``tamis run`` (or ``tamis submit``) of the same run id clears the
request and resumes. Through the store, it works alike for a run on this machine and one
submitted to a cluster, and needs no connection to the run's Ray.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from jobs.checkpoint import run_json_key
from jobs.store import Store


class RunStopRequested(Exception):
    """Raised at a wave boundary of a run asked to stop; the scheduler ends the run there."""


def stop_key(run_id: str) -> str:
    return f"runs/{run_id}/stop.json"


def request_stop(store: Store, run_id: str) -> dict[str, Any]:
    """Ask the running run ``run_id`` to stop; returns its state when asked.

    Raises:
        ValueError: No such run, or it is not running.
    """
    state = store.read_json(run_json_key(run_id))
    if state is None:
        raise ValueError(f"no run {run_id!r} in {store.uri}")
    if state.get("status") not in ("starting", "running"):
        raise ValueError(f"run {run_id!r} is not running (status: {state.get('status')}); nothing to stop")
    store.write_json(stop_key(run_id), {"requested_at": time.time(), "by": socket.gethostname()})
    return state


class StopCheck:
    """Raises :class:`RunStopRequested` once a stop request for the run is in the store."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.key = store, stop_key(run_id)

    def clear(self) -> None:
        """Forget a request left by an earlier attempt: this attempt was started after it."""
        self.store.delete_prefix(self.key)

    def __call__(self) -> None:
        if self.store.exists(self.key):
            raise RunStopRequested("stop requested (tamis stop)")
