"""Fault injection for resume tests, loaded through ``plugins:``: when TAMIS_TEST_SLOW_FIT is
set (seconds), every fit stage waits that long in the scheduler before starting, which gives
a test a wide window to kill the driver between a group stage and the fit after it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from jobs import execute


def slow_down(function: str, variable: str, when: Callable[..., bool] | None = None) -> None:
    """Make ``jobs.execute.<function>`` wait ``$<variable>`` seconds before each call (only
    the calls whose arguments ``when`` accepts, when given); patches once."""
    delay = float(os.environ.get(variable, "0") or 0)
    original = getattr(execute, function)
    if not delay or getattr(original, "_slowed", False):
        return

    def slowed(*args: Any, **kwargs: Any) -> Any:
        if when is None or when(*args, **kwargs):
            time.sleep(delay)
        return original(*args, **kwargs)

    slowed._slowed = True  # type: ignore[attr-defined]
    setattr(execute, function, slowed)


slow_down("run_fit", "TAMIS_TEST_SLOW_FIT")
