"""Runs of equal values in sorted arrays: the vectorized form of "for each group" used by
operators that sort rows by a key and then treat each run of equal keys as one group."""

from __future__ import annotations

import numpy as np


def run_starts(*columns: np.ndarray) -> np.ndarray:
    """True where a row starts a run: its values differ from the previous row's in any column."""
    n = len(columns[0])
    starts = np.zeros(n, dtype=bool)
    if n:
        starts[0] = True
        for values in columns:
            starts[1:] |= values[1:] != values[:-1]
    return starts


def run_heads(starts: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its run."""
    return np.maximum.accumulate(np.where(starts, np.arange(len(starts)), 0))
