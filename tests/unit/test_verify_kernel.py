"""verify_kernel.first_verified decides as the numpy estimate and exact Jaccard do."""

from __future__ import annotations

import numpy as np

from operators.dedup import minhash_math as mm
from operators.dedup.shingling import ShingleSets
from operators.dedup.verify_kernel import first_verified


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
