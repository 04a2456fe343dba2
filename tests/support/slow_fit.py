"""Fault injection for resume tests, loaded through ``plugins:``: when TAMIS_TEST_SLOW_FIT is
set (seconds), every fit stage waits that long in the scheduler before starting, which gives
a test a wide window to kill the driver between a group stage and the fit after it."""

from __future__ import annotations

import os
import time
from typing import Any

from jobs import execute

_delay = float(os.environ.get("TAMIS_TEST_SLOW_FIT", "0") or 0)
if _delay and not getattr(execute.run_fit, "_slowed", False):
    _run_fit = execute.run_fit

    def _slow_run_fit(*args: Any, **kwargs: Any) -> Any:
        time.sleep(_delay)
        return _run_fit(*args, **kwargs)

    _slow_run_fit._slowed = True  # type: ignore[attr-defined]
    execute.run_fit = _slow_run_fit
