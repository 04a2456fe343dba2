"""Progress bars in the driver while a run works: one per running stage, on a terminal only.

The scheduler's state (what `tamis status` reads) already holds each stage's waves done and
total (a group or fit run in rounds counts its rounds) and the rows it has written so far;
the driver polls it twice a second. A bar shows waves (or rounds) done of all, the rows
written and their rate. When stderr is not a terminal (CI, a log file, cron) nothing is
drawn: the per-wave log lines say the same.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm


class StageBars:
    """The bars of the stages running now, updated from the scheduler's stage states."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = not quiet and bool(getattr(self.stream, "isatty", lambda: False)())
        self.bars: dict[str, tuple[tqdm, float]] = {}  # stage name -> (bar, when it started)

    def update(self, stages: list[dict[str, Any]]) -> None:
        """Open a bar for each stage that started running, move it, and close it when done."""
        if not self.enabled:
            return
        for stage in stages:
            name, status = stage["name"], stage.get("status")
            if status == "running" and name not in self.bars:
                bar = tqdm(desc=name, total=stage.get("waves_total") or None, unit="wave", file=self.stream,
                           leave=False, dynamic_ncols=True, bar_format="{desc}: {n_fmt}/{total_fmt} waves "
                           "|{bar}| [{elapsed}{postfix}]")  # tqdm puts ", " before a postfix
                self.bars[name] = (bar, time.time())
            if name in self.bars:
                self._move(stage)
                if status != "running":
                    self.bars.pop(name)[0].close()

    def _move(self, stage: dict[str, Any]) -> None:
        bar, started = self.bars[stage["name"]]
        if stage.get("waves_total") and bar.total != stage["waves_total"]:
            bar.total = stage["waves_total"]
        bar.n = stage.get("waves_done") or 0
        rows = stage.get("rows_out") or 0
        rate = rows / max(time.time() - started, 1e-9)
        bar.set_postfix_str(f"{rows:,} rows, {rate:,.0f} rows/s", refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar, _ in self.bars.values():
            bar.close()
        self.bars.clear()
