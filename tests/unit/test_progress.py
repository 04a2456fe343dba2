"""The driver's progress bars: drawn on a terminal only, one per running stage, closed when it ends."""

from __future__ import annotations

import io
from typing import Any

from jobs.progress import StageBars


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def stage(name: str, status: str, done: int = 0, total: int | None = 4, rows: int | None = None) -> dict[str, Any]:
    return {"name": name, "status": status, "waves_done": done, "waves_total": total, "rows_out": rows}


def test_a_bar_per_running_stage_with_waves_rows_and_rate() -> None:
    out = Terminal()
    bars = StageBars(out)
    bars.update([stage("read", "running", 1, rows=1000), stage("filter", "pending")])
    assert set(bars.bars) == {"read"}
    bars.update([stage("read", "running", 3, rows=3500), stage("filter", "running", 0, total=None)])
    text = out.getvalue()
    assert "read: 3/4 waves" in text and "3,500 rows" in text and "rows/s" in text
    assert "filter: 0/? waves" in text
    bars.update([stage("read", "committed", 4, rows=4000), stage("filter", "running", 1, 4, rows=10)])
    assert set(bars.bars) == {"filter"}  # a finished stage's bar is closed
    bars.close()
    assert not bars.bars


def test_nothing_is_drawn_off_a_terminal_or_when_quiet() -> None:
    for bars, out in ((StageBars(io.StringIO()), None), (StageBars(Terminal(), quiet=True), None)):
        bars.update([stage("read", "running", 1, rows=5)])
        assert not bars.enabled and not bars.bars and bars.stream.getvalue() == ""
