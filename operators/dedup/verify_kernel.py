"""Compiled kernels (numba) of ``minhash_dedup.keep``'s verification: one member against
its linked documents, sketch pre-filter then exact Jaccard (:func:`first_verified`), and the
greedy clustering of every component of a partition around it (:func:`greedy_clusters`).

The Python versions made one numpy call for the estimates and one per exact check, and kept
each bucket's rows in dicts of lists; on a component of 100,000 near-copies that overhead
was most of keep's group step. The decisions are the same floating-point operations in the
same order (tests compare them with the Python loop).
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


@_jit
def greedy_clusters(members: np.ndarray, starts: np.ndarray, codes: np.ndarray, num_codes: int,
                    values: np.ndarray, offsets: np.ndarray, set_of: np.ndarray, sketch: np.ndarray,
                    least: float, threshold: float, max_hops: int, keeper: np.ndarray) -> np.ndarray:
    """``minhash_dedup.keep``'s greedy verified clustering of every component of a batch.

    Components are ``members[starts[c]:starts[c + 1]]`` (rows in visit order). Each member is
    checked (:func:`first_verified`) against the kept rows it shares an LSH bucket with, in
    the order they were kept; failing that, when ``max_hops`` > 1, against the removed rows
    it shares a bucket with that a chain may still pass through (fewer than ``max_hops``
    links from their keeper), joining that row's keeper. Unmatched, it is kept. Each
    bucket's rows are a linked list in the order they joined it.

    Args:
        codes: ``int64 [rows, bands]``: each row's buckets as dense codes below ``num_codes``
            (a band's hash and the band).
        keeper: each row's keeper (row index), written for the members.

    Returns:
        ``int64 [4]``: exact checks, pairs skipped by the sketch, confirmed pairs, matches
        through a removed row.
    """
    bands = codes.shape[1]
    rows = len(set_of)
    stats = np.zeros(4, dtype=np.int64)
    heads = np.full((2, num_codes), -1, dtype=np.int64)  # 0: kept rows, 1: removed rows a chain may pass
    tails = np.full((2, num_codes), -1, dtype=np.int64)
    entry_row = np.empty(rows * bands, dtype=np.int64)
    entry_next = np.empty(rows * bands, dtype=np.int64)
    rank = np.zeros(rows, dtype=np.int64)
    hops = np.zeros(rows, dtype=np.int64)
    seen = np.full(rows, -1, dtype=np.int64)
    found = np.empty(rows, dtype=np.int64)
    used = 0
    for c in range(len(starts) - 1):
        for visit in range(starts[c], starts[c + 1]):
            row = members[visit]
            rank[row] = visit
            match = -1
            for kind in range(2):
                if kind == 1 and max_hops <= 1:
                    break
                n = 0  # the linked rows of this kind, each once
                for b in range(bands):
                    e = heads[kind, codes[row, b]]
                    while e >= 0:
                        other = entry_row[e]
                        if seen[other] != row * 2 + kind:
                            seen[other] = row * 2 + kind
                            found[n] = other
                            n += 1
                        e = entry_next[e]
                if n == 0:
                    continue
                linked = found[:n][np.argsort(rank[found[:n]], kind="mergesort")]
                at, checked, skipped = first_verified(values, offsets, set_of, sketch, row, linked, least, threshold)
                stats[0] += checked
                stats[1] += skipped
                if at >= 0:
                    stats[2] += 1
                    if kind == 0:
                        match, hops[row] = linked[at], 1
                    else:
                        match, hops[row] = keeper[linked[at]], hops[linked[at]] + 1
                        stats[3] += 1
                    break
            into = 0
            if match >= 0:
                keeper[row] = match
                if hops[row] >= max_hops:  # no chain may pass through it
                    continue
                into = 1
            for b in range(bands):
                code = codes[row, b]
                entry_row[used] = row
                entry_next[used] = -1
                if tails[into, code] >= 0:
                    entry_next[tails[into, code]] = used
                else:
                    heads[into, code] = used
                tails[into, code] = used
                used += 1
        for visit in range(starts[c], starts[c + 1]):  # buckets may recur in another component
            for b in range(bands):
                for kind in range(2):
                    heads[kind, codes[members[visit], b]] = -1
                    tails[kind, codes[members[visit], b]] = -1
    return stats
