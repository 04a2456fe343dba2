"""verify_kernel: first_verified decides as the numpy estimate and exact Jaccard do;
greedy_clusters clusters as the plain Python loop it replaced."""

from __future__ import annotations

import numpy as np
import pytest

from operators.dedup import minhash_math as mm
from operators.dedup.shingling import ShingleSets
from operators.dedup.near_keep import _bucket_codes
from operators.dedup.verify_kernel import first_verified, greedy_clusters


def test_first_verified_matches_numpy_estimates_and_exact_jaccard() -> None:
    rng = np.random.default_rng(7)
    base = np.unique(rng.integers(0, 2**63, size=400, dtype=np.uint64))
    docs = [base]
    for n in range(1, 60):  # near and far copies of base: some pass the pre-filter, some the threshold
        keep = rng.random(len(base)) > rng.uniform(0.0, 0.5)
        docs.append(np.unique(np.concatenate([base[keep], rng.integers(0, 2**63, size=int(n % 7) * 10,
                                                                       dtype=np.uint64)])))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    sets = ShingleSets(values=np.concatenate(docs), offsets=offsets)
    set_of = np.arange(len(docs), dtype=np.int64)
    # sketches: the low byte of a 112-value MinHash of each set
    perms = mm.Permutations(112, 1, "fast")
    sketch = (mm.signatures(sets, perms) & 0xFF).astype(np.uint8)
    least, threshold = 0.6, 0.8
    estimates = mm.sketch_jaccard(sketch, sketch[0])
    exact = np.array([mm.jaccard(docs[0], d) for d in docs])
    assert (estimates < least).any() and ((estimates >= least) & (exact < threshold)).any() and (exact >= threshold).any()
    for start in range(1, 50, 7):
        linked = np.arange(start, len(docs), dtype=np.int64)[::-1]
        at, checked, skipped = first_verified(sets.values, sets.offsets, set_of, sketch, 0, linked, least, threshold)
        want, want_checked, want_skipped = -1, 0, 0
        for n, k in enumerate(linked):
            if estimates[k] < least:
                want_skipped += 1
            else:
                want_checked += 1
                if exact[k] >= threshold:
                    want = n
                    break
        assert (at, checked, skipped) == (want, want_checked, want_skipped)


def python_greedy(components: list[list[int]], bands: np.ndarray, sets: ShingleSets, sketch: np.ndarray,
                  least: float, threshold: float, max_hops: int | None) -> tuple[np.ndarray, list[int]]:
    """The loop ``minhash_dedup.keep`` ran in Python until 2026-12-05, as it was: the oracle."""
    keeper = np.arange(len(bands))
    stats = [0, 0, 0, 0]

    def first(row: int, linked: list[int]) -> int | None:
        for k in linked:
            if mm.sketch_jaccard(sketch[k:k + 1], sketch[row])[0] < least:
                stats[1] += 1
                continue
            stats[0] += 1
            if mm.jaccard(sets.doc(row), sets.doc(k)) >= threshold:
                stats[2] += 1
                return k
        return None

    for members in components:
        hops_bound = max_hops or len(members)
        kept_in: dict[tuple[int, int], list[int]] = {}
        via_in: dict[tuple[int, int], list[int]] = {}
        rank: dict[int, int] = {}
        hops: dict[int, int] = {}
        for row in members:
            rank[row] = len(rank)
            buckets = list(enumerate(bands[row].tolist()))
            linked = sorted({k for b in buckets for k in kept_in.get(b, ())}, key=rank.__getitem__)
            match = first(row, linked) if linked else None
            if match is not None:
                hops[row] = 1
            elif hops_bound > 1:
                removed = sorted({r for b in buckets for r in via_in.get(b, ())}, key=rank.__getitem__)
                via = first(row, removed) if removed else None
                if via is not None:
                    match, hops[row] = int(keeper[via]), hops[via] + 1
                    stats[3] += 1
            if match is None:
                into = kept_in
            else:
                keeper[row] = match
                if hops[row] >= hops_bound:
                    continue
                into = via_in
            for b in buckets:
                into.setdefault(b, []).append(row)
    return keeper, stats


@pytest.mark.parametrize("max_hops", [1, 2, 3, None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_clusters_decides_as_the_python_loop(max_hops: int | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    docs, bands = [], []
    for _ in range(10):  # components: chains of edits from a page, buckets from few values
        current = np.unique(rng.integers(0, 2**63, size=300, dtype=np.uint64))
        for _ in range(int(rng.integers(1, 60))):
            docs.append(current)
            bands.append(rng.integers(0, 4, size=6))  # 4 values per band: many shared buckets
            drop = rng.random(len(current)) < rng.uniform(0.04, 0.14)  # J ~0.75-0.92 per step: chains
            current = np.unique(np.concatenate([current[~drop], rng.integers(0, 2**63, size=int(drop.sum()),
                                                                              dtype=np.uint64)]))
    n = len(docs)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(d) for d in docs], out=offsets[1:])
    sets = ShingleSets(values=np.concatenate(docs), offsets=offsets)
    sketch = (mm.signatures(sets, mm.Permutations(64, 1, "fast")) & 0xFF).astype(np.uint8)
    band_values = np.asarray(bands, dtype=np.uint64)
    # components of shuffled rows, visited in a random priority; the same band values recur
    # across components (as with scopes), which must not link them
    order = rng.permutation(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=4, replace=False))
    components = [part.tolist() for part in np.split(order, cuts)]
    want, stats = python_greedy(components, band_values, sets, sketch, 0.5, 0.8, max_hops)
    members = np.concatenate([np.asarray(c, dtype=np.int64) for c in components])
    starts = np.cumsum([0] + [len(c) for c in components]).astype(np.int64)
    codes, total = _bucket_codes(band_values)
    keeper = np.arange(n)
    got = greedy_clusters(members, starts, codes, total, sets.values, sets.offsets, np.arange(n, dtype=np.int64),
                          sketch, 0.5, 0.8, max_hops or n + 1, keeper)
    assert np.array_equal(keeper, want) and got.tolist() == stats
    assert stats[0] > 0 and (keeper != np.arange(n)).any()
    assert max_hops == 1 or stats[3] > 0  # matches through removed rows happen
