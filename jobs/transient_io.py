"""Transient storage errors, retried where the clients' own retries stop.

boto3 (standard mode) and Arrow's S3 filesystem (standard strategy) retry a request 10
times, but an answer lost after its headers (a connection dropped mid-body) surfaces from
Arrow as ``AWS Error INTERNAL_FAILURE ... Failed to flush response stream`` and is not
retried: the whole task fails. Ray retries only system failures, not a task's own
exceptions (../shared/RAY-NOTES.md), so one dropped connection would fail a run. Every task
of tamis writes the same files under the same names when run again, so it is safe to rerun
one that failed on such an error: Ray Data map tasks through ``retried_map_errors`` (set by
jobs/execute.py), fits and the driver's own reads through :func:`retry_transient`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_IO_ERRORS = (
    # Arrow's S3 filesystem (the AWS C++ SDK's error names), as Ray Data's own readers retry them
    "AWS Error INTERNAL_FAILURE",
    "AWS Error NETWORK_CONNECTION",
    "AWS Error SLOW_DOWN",
    "AWS Error SERVICE_UNAVAILABLE",
    "AWS Error UNKNOWN (HTTP status 500)",
    "AWS Error UNKNOWN (HTTP status 503)",
    # boto3, once its own attempts are spent
    "ConnectionClosedError",
    "EndpointConnectionError",
    "ReadTimeoutError",
    "ResponseStreamingError",
    "(SlowDown)",
    "(ServiceUnavailable)",
    "(InternalError)",
)
"""Substrings of an error's text (its causes included) that mark it transient."""

MAP_RETRIES = 4
"""Times a Ray Data task that failed on a transient error is run again (with backoff)."""


def is_transient(err: BaseException) -> bool:
    """Whether ``err`` or any error in its cause chain is a transient storage error."""
    seen: BaseException | None = err
    while seen is not None:
        text = f"{type(seen).__name__}: {seen}"
        if any(pattern in text for pattern in TRANSIENT_IO_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_transient(call: Callable[[], T], what: str, attempts: int = MAP_RETRIES + 1,
                    max_backoff_s: float = 16.0) -> T:
    """``call()``, again after a transient storage error (jittered exponential backoff),
    at most ``attempts`` times in all; any other error, or the last, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:
            if attempt == attempts or not is_transient(err):
                raise
            wait = min(max_backoff_s, 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            log.warning("%s: transient storage error (%s), attempt %d of %d again in %.1fs", what,
                        str(err).splitlines()[0][:200], attempt + 1, attempts, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
