"""Fault injection for resume tests, loaded through ``plugins:``: when TAMIS_TEST_SLOW_MAP is
set (seconds), every map stage that runs on its own (``execute.run_map``: a map after a fit
or a group, not one chained behind the read) waits that long before starting, which gives a
test a wide window to kill the driver between a fit and the map after it."""

from __future__ import annotations

import os
import time
from typing import Any

from jobs import execute

_delay = float(os.environ.get("TAMIS_TEST_SLOW_MAP", "0") or 0)
if _delay and not getattr(execute.run_map, "_slowed", False):
    _run_map = execute.run_map

    def _slow_run_map(*args: Any, **kwargs: Any) -> Any:
        time.sleep(_delay)
        return _run_map(*args, **kwargs)

    _slow_run_map._slowed = True  # type: ignore[attr-defined]
    execute.run_map = _slow_run_map
