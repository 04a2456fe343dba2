"""Test-only operators, loaded through a pipeline's ``plugins:`` list.

``slow_copy`` passes rows through unchanged after sleeping, so fault tests have a window in
which to kill a worker or the driver mid-stage. It also records the pid of the process that
ran it in a marker directory (config), so a test can find and kill exactly that worker.
"""

from __future__ import annotations

import os
import time

import pyarrow as pa
from pydantic import Field

from operators.base import MapOperator, OperatorConfig
from operators.registry import register


class SlowCopyConfig(OperatorConfig):
    seconds_per_batch: float = Field(0.5, description="Sleep per batch.")
    pid_dir: str | None = Field(None, description="Directory where each running worker drops <pid>.")


@register("slow_copy")
class SlowCopy(MapOperator[SlowCopyConfig]):
    """Passes batches through unchanged after a sleep (for fault tests only).

    Reads: nothing. Writes: nothing. Deterministic output (the input).
    """

    version = 1
    Config = SlowCopyConfig

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.config.pid_dir:
            open(os.path.join(self.config.pid_dir, str(os.getpid())), "w").close()
        time.sleep(self.config.seconds_per_batch)
        return batch


class ExplodeConfig(OperatorConfig):
    message: str = Field("planted failure", description="The error message to raise.")


@register("explode")
class Explode(MapOperator[ExplodeConfig]):
    """Raises on every batch (for failure-reporting tests only).

    Reads: nothing. Writes: nothing.
    """

    version = 1
    Config = ExplodeConfig

    def __call__(self, batch: pa.Table) -> pa.Table:
        raise RuntimeError(self.config.message)
