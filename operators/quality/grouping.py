"""Exact grouping of integer pairs by one packed sort: the counting primitive of the
repetition rules (equal lines, equal paragraphs, equal n-grams within a document)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Groups:
    """Positions ``0..n-1`` grouped by an exact key, each group in increasing position.

    ``order`` lists the positions group after group; ``start`` marks, in that order, the
    first position of each group (its first occurrence); ``number`` gives each position
    its group's number.
    """

    order: np.ndarray
    start: np.ndarray

    @cached_property
    def number(self) -> np.ndarray:
        """Group number of each position (numbers follow the key order)."""
        number = np.empty(len(self.order), dtype=np.int32 if len(self.order) < 2**31 else np.int64)
        number[self.order] = np.cumsum(self.start, dtype=number.dtype) - 1
        return number

    @cached_property
    def first(self) -> np.ndarray:
        """Whether each position is the first of its group."""
        first = np.zeros(len(self.order), dtype=bool)
        first[self.order[self.start]] = True
        return first

    @cached_property
    def size(self) -> np.ndarray:
        """Positions in each group, by group number."""
        return np.diff(np.append(np.flatnonzero(self.start), len(self.order)))

    @cached_property
    def first_position(self) -> np.ndarray:
        """First position of each group, by group number."""
        return self.order[self.start]


def group_pairs(major: np.ndarray, minor: np.ndarray) -> Groups:
    """Group positions by the pair ``(major[i], minor[i])`` of non-negative integers.

    Sorting one packed int64 (key bits, then position bits) is exact and faster than
    hashing or ``np.lexsort``; pairs too wide to pack fall back to lexsort.
    """
    count = len(major)
    if count == 0:
        return Groups(np.zeros(0, dtype=np.int32), np.zeros(0, dtype=bool))
    pos_bits = max(count - 1, 1).bit_length()
    minor_bits = max(int(minor.max()), 1).bit_length()
    major_bits = max(int(major.max()), 1).bit_length()
    if pos_bits + minor_bits + major_bits <= 63:
        # Built and sorted in place: three int64 arrays of `count` at most at any time.
        packed = major.astype(np.int64)
        packed <<= minor_bits
        packed |= minor
        packed <<= pos_bits
        packed |= np.arange(count, dtype=np.int64)
        packed.sort()
        order = (packed & ((1 << pos_bits) - 1)).astype(np.int32 if pos_bits < 31 else np.int64)
        packed >>= pos_bits
        start = np.empty(count, dtype=bool)
        start[0] = True
        np.not_equal(packed[1:], packed[:-1], out=start[1:])
    else:
        order = np.lexsort((np.arange(count), minor, major))
        a, b = major[order], minor[order]
        start = np.concatenate(([True], (a[1:] != a[:-1]) | (b[1:] != b[:-1])))
    return Groups(order, start)
