"""Fault injection for resume tests, loaded through ``plugins:``: when TAMIS_TEST_SLOW_MAP is
set (seconds), every map stage that runs on its own (``execute.run_map``: a map after a fit
or a group, not one chained behind the read) waits that long before starting, which gives a
test a wide window to kill the driver between a fit and the map after it. With
TAMIS_TEST_SLOW_MAP_STAGE, only the call whose first stage has that name waits (the others
before it, say a scorer after a group, do not hold the test up)."""

from __future__ import annotations

import os
from typing import Any

from tests.support.slow_fit import slow_down


def _is_the_stage(steps: list[Any], *_: Any, **__: Any) -> bool:
    stage = os.environ.get("TAMIS_TEST_SLOW_MAP_STAGE")
    return not stage or (bool(steps) and steps[0].name == stage)


slow_down("run_map", "TAMIS_TEST_SLOW_MAP", when=_is_the_stage)
