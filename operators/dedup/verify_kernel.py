"""Compiled kernel (numba) of ``minhash_dedup.keep``'s verification step: one member
against its linked documents, sketch pre-filter then exact Jaccard, in one call.

The Python version made one numpy call for the estimates and one per exact check; on a
component of 100,000 near-copies that overhead was most of keep's loop. The decisions
are the same floating-point operations in the same order (a test compares them).
"""

from __future__ import annotations

import numpy as np

from operators.dedup.hash_kernel import sorted_jaccard
from operators.dedup.token_kernel import compiled as _jit


@_jit
def first_verified(values: np.ndarray, offsets: np.ndarray, set_of: np.ndarray, sketch: np.ndarray,
                   row: int, linked: np.ndarray, least: float, threshold: float) -> tuple[int, int, int]:
    """The first of ``linked`` (row indices, in the order to try) whose shingle set's exact
    Jaccard with ``row``'s reaches ``threshold``, skipping those whose 8-bit sketch
    estimate (b-bit MinHash, Li and Koenig 2010) is below ``least``.

    Args:
        values, offsets: the distinct texts' shingle sets (``ShingleSets``, CSR).
        set_of: each row's index into those sets.
        sketch: ``uint8 [rows, m]`` low bytes of the MinHash signatures.

    Returns:
        (position in ``linked`` of the match or -1, exact checks made, pairs skipped).
    """
    m = sketch.shape[1]
    a = values[offsets[set_of[row]]:offsets[set_of[row] + 1]]
    checked, skipped = 0, 0
    for n in range(len(linked)):
        other = linked[n]
        equal = 0
        for i in range(m):
            equal += sketch[row, i] == sketch[other, i]
        if (equal / m - 1 / 256) / (1 - 1 / 256) < least:
            skipped += 1
            continue
        checked += 1
        b = values[offsets[set_of[other]]:offsets[set_of[other] + 1]]
        if sorted_jaccard(a, b) >= threshold:
            return n, checked, skipped
    return -1, checked, skipped
