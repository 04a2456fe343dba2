"""Fault injection for resume tests, loaded through ``plugins:``: when TAMIS_TEST_SLOW_MAP is
set (seconds), every map stage that runs on its own (``execute.run_map``: a map after a fit
or a group, not one chained behind the read) waits that long before starting, which gives a
test a wide window to kill the driver between a fit and the map after it."""

from __future__ import annotations

from tests.support.slow_fit import slow_down

slow_down("run_map", "TAMIS_TEST_SLOW_MAP")
