"""Unit tests of MinHash signatures, LSH banding and Jaccard (operators/dedup/minhash_math.py)."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.dedup.minhash_math import (
    MAX_HASH,
    Permutations,
    band_hashes,
    band_objective,
    candidate_probability,
    estimate_jaccard,
    jaccard,
    optimal_bands,
    signatures,
)
from operators.dedup.shingling import char_shingles, word_shingles
from tests.unit.test_shingling import CORPUS, reference_char_shingles, reference_word_shingles

FAST_128 = Permutations(128, 1, "fast")


def datasketch_minhash(num_perm: int, seed: int) -> MinHash:
    """datasketch's MinHash with the permutations our "datasketch" scheme reproduces.

    datasketch >= 2.0 defaults to scheme "affine32"; "legacy" is the scheme of every
    earlier release (the one without a ``scheme`` argument).
    """
    try:
        return MinHash(num_perm=num_perm, seed=seed, scheme="legacy")
    except TypeError:
        return MinHash(num_perm=num_perm, seed=seed)


def fast_signatures(texts: list[str | None], ngram: int = 5,
                    perms: Permutations = FAST_128) -> np.ndarray:
    return signatures(word_shingles(pa.array(texts, pa.string()), ngram, "fast"), perms)


def tolerance(j: float, num_perm: int) -> float:
    return 3 * math.sqrt(j * (1 - j) / num_perm) + 0.02


def reference_jaccard(a: str, b: str, ngram: int) -> float:
    sa, sb = set(reference_word_shingles(a, ngram)), set(reference_word_shingles(b, ngram))
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


# exact reproduction of datasketch


@pytest.mark.parametrize(("num_perm", "seed"), [(128, 1), (64, 7), (256, 42)])
def test_permutations_are_datasketch_legacy_permutations(num_perm: int, seed: int) -> None:
    ours = Permutations(num_perm, seed, "datasketch")
    a, b = datasketch_minhash(num_perm, seed).permutations
    assert ours.a.dtype == ours.b.dtype == np.uint64
    assert np.array_equal(ours.a, a) and np.array_equal(ours.b, b)


@pytest.mark.parametrize(("num_perm", "seed"), [(128, 1), (64, 7)])
def test_word_signatures_equal_datasketch_element_for_element(num_perm: int, seed: int) -> None:
    ours = signatures(word_shingles(pa.array(CORPUS, pa.string()), 5, "datasketch"),
                      Permutations(num_perm, seed, "datasketch"))
    assert ours.shape == (len(CORPUS), num_perm) and ours.dtype == np.uint64
    for i, text in enumerate(CORPUS):
        m = datasketch_minhash(num_perm, seed)
        m.update_batch([s.encode("utf-8") for s in reference_word_shingles(text, 5)])
        assert np.array_equal(ours[i], m.hashvalues), f"document {i}: {text!r}"


def test_char_signatures_equal_datasketch_element_for_element() -> None:
    ours = signatures(char_shingles(pa.array(CORPUS, pa.string()), 5, "datasketch"),
                      Permutations(128, 1, "datasketch"))
    for i, text in enumerate(CORPUS):
        m = datasketch_minhash(128, 1)
        for s in reference_char_shingles(text, 5):
            m.update(s.encode("utf-8"))
        assert np.array_equal(ours[i], m.hashvalues), f"document {i}: {text!r}"


def test_datasketch_permutations_refuse_64_bit_shingles() -> None:
    shingles = word_shingles(pa.array([CORPUS[0]]), 5, "fast")
    with pytest.raises(ValueError, match="32-bit"):
        signatures(shingles, Permutations(128, 1, "datasketch"))


# estimation accuracy of the fast scheme


def vocabulary(size: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


def constructed_pairs() -> list[tuple[str, str]]:
    """Pairs spanning Jaccard 0..1: shifted windows of one text, and texts with edits."""
    rng = random.Random(3)
    words = vocabulary(2000, 11)
    rng.shuffle(words)
    pairs = []
    base = words[:400]
    for shift in (0, 10, 30, 60, 100, 150, 200, 260, 320, 380):
        pairs.append((" ".join(base), " ".join(words[shift:shift + 400])))
    for every in (3, 7, 15, 40, 100):
        edited = [w if i % every else words[1000 + i] for i, w in enumerate(base)]
        pairs.append((" ".join(base), " ".join(edited)))
    return pairs


def test_fast_estimates_are_within_tolerance_of_true_jaccard() -> None:
    pairs = constructed_pairs()
    sigs = fast_signatures([t for pair in pairs for t in pair])
    truths = []
    for k, (a, b) in enumerate(pairs):
        truth = reference_jaccard(a, b, 5)
        truths.append(truth)
        estimate = estimate_jaccard(sigs[2 * k], sigs[2 * k + 1])
        assert abs(estimate - truth) <= tolerance(truth, 128), (k, truth, estimate)
    assert min(truths) < 0.1 and max(truths) == 1.0 and any(0.4 < t < 0.6 for t in truths)


WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa"]


@st.composite
def related_documents(draw: st.DrawFn) -> tuple[str, str]:
    a = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=60))
    b = list(a)
    for position, word in draw(st.lists(st.tuples(st.integers(0, 59), st.sampled_from(WORDS)),
                                        max_size=12)):
        if position < len(b):
            b[position] = word
    b = b[draw(st.integers(0, len(b))):] + draw(st.lists(st.sampled_from(WORDS), max_size=30))
    return " ".join(a), " ".join(b)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(pair=related_documents(), ngram=st.sampled_from([1, 2, 3, 5]))
def test_fast_estimate_property(pair: tuple[str, str], ngram: int) -> None:
    a, b = pair
    truth = reference_jaccard(a, b, ngram)
    shingles = word_shingles(pa.array([a, b]), ngram, "fast")
    assert jaccard(shingles.doc(0), shingles.doc(1)) == pytest.approx(truth)
    sigs = signatures(shingles, FAST_128)
    assert abs(estimate_jaccard(sigs[0], sigs[1]) - truth) <= tolerance(truth, 128)


# signature invariants


def test_signature_values_are_32_bit() -> None:
    for perms in (FAST_128, Permutations(128, 1, "datasketch")):
        scheme = perms.scheme
        sigs = signatures(word_shingles(pa.array(CORPUS, pa.string()), 5, scheme), perms)
        assert sigs.dtype == np.uint64 and sigs.shape == (len(CORPUS), 128)
        assert int(sigs.max()) <= MAX_HASH


def test_signatures_are_deterministic() -> None:
    first = fast_signatures(CORPUS)
    again = fast_signatures(CORPUS, perms=Permutations(128, 1, "fast"))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, fast_signatures(CORPUS, perms=Permutations(128, 2, "fast")))


@pytest.mark.parametrize("scheme", ["fast", "datasketch"])
def test_signature_does_not_depend_on_the_batch(scheme: str) -> None:
    perms = Permutations(128, 1, scheme)  # type: ignore[arg-type]
    batch = signatures(word_shingles(pa.array(CORPUS, pa.string()), 5, scheme), perms)
    reversed_batch = signatures(
        word_shingles(pa.array(CORPUS[::-1], pa.string()), 5, scheme), perms)[::-1]
    for i, text in enumerate(CORPUS):
        alone = signatures(word_shingles(pa.array([text], pa.string()), 5, scheme), perms)[0]
        assert np.array_equal(batch[i], alone)
    assert np.array_equal(batch, reversed_batch)


def reference_signature(values: np.ndarray, perms: Permutations) -> np.ndarray:
    """One document's signature straight from the definition of each scheme, in uint64."""
    a, b = perms.a.astype(np.uint64)[:, None], perms.b.astype(np.uint64)[:, None]
    if perms.scheme == "fast":  # (a k + b) mod 2**32 of the high 32 bits k
        hashed = (a * (values >> np.uint64(32))[None, :] + b) & np.uint64(MAX_HASH)
    else:  # ((a x + b) mod 2**64 mod (2**61 - 1)) & (2**32 - 1)
        hashed = ((a * values[None, :] + b) % np.uint64((1 << 61) - 1)) & np.uint64(MAX_HASH)
    return hashed.min(axis=1, initial=MAX_HASH)


@pytest.mark.parametrize("chunk_bytes", [1, 8 * 128 * 3, 8 * 128 * 64, 1 << 30])
def test_chunking_does_not_change_signatures(chunk_bytes: int) -> None:
    # Empty documents between, before and after long ones exercise segments cut by chunks.
    texts = ["", CORPUS[0], "", "", CORPUS[3], "one", None, CORPUS[4], ""]
    for scheme in ("fast", "datasketch"):
        perms = Permutations(128, 1, scheme)  # type: ignore[arg-type]
        shingles = word_shingles(pa.array(texts, pa.string()), 2, scheme)  # type: ignore[arg-type]
        expected = np.stack([reference_signature(shingles.doc(i), perms) for i in range(shingles.num_docs)])
        assert np.array_equal(signatures(shingles, perms, chunk_bytes=chunk_bytes), expected)


def test_empty_documents_keep_max_hash() -> None:
    sigs = fast_signatures(["", None, "?!", "   ", CORPUS[0]])
    assert (sigs[:4] == MAX_HASH).all()
    assert (sigs[4] < MAX_HASH).any()
    empty = word_shingles(pa.array([], pa.string()), 5, "fast")
    assert signatures(empty, FAST_128).shape == (0, 128)


def test_short_document_signature_is_its_one_shingle_permuted() -> None:
    shingles = word_shingles(pa.array(["just three words"]), 5, "fast")
    assert shingles.sizes.tolist() == [1]
    key = shingles.values[0] >> np.uint64(32)
    expected = (FAST_128.a.astype(np.uint64) * key + FAST_128.b) & np.uint64(MAX_HASH)
    assert np.array_equal(signatures(shingles, FAST_128)[0], expected)


def test_permutation_parameters() -> None:
    fast = Permutations(64, 5, "fast")
    assert fast.a.dtype == fast.b.dtype == np.uint32  # arithmetic modulo 2**32
    assert (fast.a & np.uint64(1)).all()
    assert len(set(fast.a.tolist())) == 64
    assert np.array_equal(fast.a, Permutations(64, 5, "fast").a)
    with pytest.raises(ValueError, match="scheme"):
        Permutations(64, 5, "murmur")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_perm"):
        Permutations(0, 5, "fast")


# LSH parameters


@pytest.mark.parametrize("num_perm", [112, 128, 256])
@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_optimal_bands_match_datasketch(threshold: float, num_perm: int) -> None:
    bands, rows = optimal_bands(threshold, num_perm)
    assert (bands, rows) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    assert bands * rows <= num_perm


def test_optimal_bands_weights_move_the_choice() -> None:
    # Missing pairs costs more: more, shorter bands (a lower effective threshold).
    b_fn, r_fn = optimal_bands(0.8, 128, fp_weight=0.1, fn_weight=0.9)
    b_fp, r_fp = optimal_bands(0.8, 128, fp_weight=0.9, fn_weight=0.1)
    assert candidate_probability(0.7, b_fn, r_fn) > candidate_probability(0.7, b_fp, r_fp)
    assert band_objective(0.8, *optimal_bands(0.8, 128)) <= band_objective(0.8, 14, 8)


def test_candidate_probability_is_monotone_and_bounded() -> None:
    grid = np.linspace(0.0, 1.0, 201)
    for bands, rows in [(14, 8), (20, 5), (9, 13), (1, 1), (128, 1), (1, 128)]:
        p = np.array([candidate_probability(s, bands, rows) for s in grid])
        assert np.all(np.diff(p) >= 0)
        assert p[0] == 0.0 and p[-1] == 1.0
    assert candidate_probability(0.8, 14, 8) == pytest.approx(1 - (1 - 0.8 ** 8) ** 14)


# band hashes


def test_identical_signatures_give_identical_band_hashes() -> None:
    sigs = fast_signatures([CORPUS[0], CORPUS[1], CORPUS[3]])[:, :112]
    hashes = band_hashes(sigs, 14, 8)
    assert hashes.shape == (3, 14) and hashes.dtype == np.uint64
    assert np.array_equal(hashes[0], hashes[1])
    assert not np.any(hashes[0] == hashes[2])


@pytest.mark.parametrize("column", [0, 7, 8, 50, 111])
def test_one_changed_value_changes_exactly_its_band(column: int) -> None:
    sigs = fast_signatures([CORPUS[0]])
    changed = sigs.copy()
    changed[0, column] ^= np.uint64(1)
    before, after = band_hashes(sigs, 14, 8)[0], band_hashes(changed, 14, 8)[0]
    assert np.flatnonzero(before != after).tolist() == [column // 8]


def test_equal_values_in_different_bands_or_orders_hash_differently() -> None:
    constant = np.full((1, 112), 12345, dtype=np.uint64)
    assert len(set(band_hashes(constant, 14, 8)[0].tolist())) == 14
    row = np.arange(8, dtype=np.uint64)[None, :]
    assert band_hashes(row, 1, 8)[0, 0] != band_hashes(row[:, ::-1], 1, 8)[0, 0]


def test_columns_past_the_bands_are_ignored_and_bad_shapes_rejected() -> None:
    sigs = fast_signatures([CORPUS[0]])
    changed = sigs.copy()
    changed[0, 120] += np.uint64(1)
    assert np.array_equal(band_hashes(sigs, 14, 8), band_hashes(changed, 14, 8))
    with pytest.raises(ValueError, match="bands"):
        band_hashes(sigs, 17, 8)


# Jaccard


def test_jaccard_of_sorted_sets() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.uint64)
    b = np.array([3, 4, 5], dtype=np.uint64)
    empty = np.array([], dtype=np.uint64)
    assert jaccard(a, b) == pytest.approx(2 / 5)
    assert jaccard(a, a) == 1.0
    assert jaccard(a, empty) == 0.0
    assert jaccard(empty, empty) == 0.0  # documents without shingles are never joined
    assert jaccard(empty, a) == 0.0
    # against Python sets, on random sorted sets of different sizes and overlaps
    rng = np.random.default_rng(3)
    for _ in range(200):
        pool = np.unique(rng.integers(0, 2**63 - 1, size=int(rng.integers(1, 400)), dtype=np.int64)).astype(np.uint64)
        x = np.unique(rng.choice(pool, size=int(rng.integers(0, len(pool) + 1))))
        y = np.unique(rng.choice(pool, size=int(rng.integers(0, len(pool) + 1))))
        union = len(set(x.tolist()) | set(y.tolist()))
        expected = len(set(x.tolist()) & set(y.tolist())) / union if union else 0.0
        assert jaccard(x, y) == pytest.approx(expected) and jaccard(y, x) == pytest.approx(expected)


def test_estimate_jaccard() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert estimate_jaccard(a, a) == 1.0
    assert estimate_jaccard(a, np.array([1, 2, 0, 0], dtype=np.uint64)) == 0.5
    with pytest.raises(ValueError, match="shape"):
        estimate_jaccard(a, a[:3])
