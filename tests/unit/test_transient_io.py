"""Transient storage errors: told apart by their text (causes included), retried a bounded
number of times, anything else raised at once."""

from __future__ import annotations

import pytest

from jobs import transient_io
from jobs.transient_io import is_transient, retry_transient


def arrow_dropped() -> OSError:
    return OSError("AWS Error INTERNAL_FAILURE during GetObject operation: Failed to flush response stream")


def test_transient_errors_are_told_by_their_text_and_their_causes() -> None:
    assert is_transient(arrow_dropped())
    try:
        try:
            raise arrow_dropped()
        except OSError as inner:
            raise RuntimeError("reading part-00003.parquet failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
    assert not is_transient(FileNotFoundError("stages/x/part-0.parquet"))
    assert not is_transient(OSError("corrupt input file s3://b/x.gz: reading stopped at line 3"))


def test_retry_transient_retries_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transient_io.time, "sleep", lambda _: None)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise arrow_dropped()
        return "done"

    assert retry_transient(flaky, "test") == "done" and len(calls) == 3
    calls.clear()

    def always() -> str:
        calls.append(1)
        raise arrow_dropped()

    with pytest.raises(OSError, match="INTERNAL_FAILURE"):
        retry_transient(always, "test", attempts=4)
    assert len(calls) == 4


def test_other_errors_are_raised_at_once() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        retry_transient(broken, "test")
    assert calls == [1]
