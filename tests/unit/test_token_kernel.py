"""Unit tests of the compiled normalization and hashing kernels (operators/dedup/token_kernel.py).

Each kernel is compared with an independent plain Python or numpy reference, and the
shingle hashes of a fixed corpus with their digest from before the kernels existed: an
index built by an earlier run must still match.
"""

from __future__ import annotations

import hashlib
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.dedup import minhash_math as mm
from operators.dedup import hash_kernel, token_kernel
from operators.dedup.code_points import NFKC_UNSAFE, code_point_classes, lower_map
from operators.dedup.shingle_hash import window_counts, window_hashes, word_hashes
from operators.dedup.shingling import ShingleSets, char_shingles, word_shingles
from operators.dedup.tokens import _unsafe_segments, _utf8_view, normalize_words, token_spans
from tests.unit.test_shingling import CORPUS
from tests.unit.test_tokens import TRICKY

_MASK = (1 << 64) - 1


def reference_word_hash(word: bytes) -> int:
    """The "fast" word hash in plain Python integers (MurmurHash3 fmix64 over 8-byte chunks)."""
    def fmix(h: int) -> int:
        h ^= h >> 33
        h = h * 0xFF51AFD7ED558CCD & _MASK
        h ^= h >> 33
        h = h * 0xC4CEB9FE1A85EC53 & _MASK
        return h ^ h >> 33

    if len(word) > hash_kernel.LONG_WORD:
        return xxhash.xxh64_intdigest(word)
    h = fmix(int.from_bytes(word[:8], "little") ^ (len(word) * 0x243F6A8885A308D3 & _MASK))
    for k in range(8, len(word), 8):
        h = fmix(int.from_bytes(word[k:k + 8], "little") ^ h)
    return h


def reference_windows(hashes: list[int], ngram: int) -> list[int]:
    """Window polynomials of one document's word hashes, in plain Python integers."""
    def finish(x: int) -> int:
        return (x ^ x >> 32) * 0xC4CEB9FE1A85EC53 & _MASK

    def poly(ws: list[int]) -> int:
        x = 0
        for w in ws:
            x = (x * 0xFF51AFD7ED558CCF + w) & _MASK
        return x

    if not hashes:
        return []
    if len(hashes) < ngram:
        return [finish(poly(hashes) ^ (len(hashes) * 0x243F6A8885A308D3 & _MASK))]
    return [finish(poly(hashes[j:j + ngram])) for j in range(len(hashes) - ngram + 1)]


TEXTS = CORPUS + ["".join(TRICKY[i:i + 9]) for i in range(0, len(TRICKY), 3)] + \
    ["x" * 300 + " long word " + "ab" * 200]


def test_shingle_hashes_are_unchanged_since_the_numpy_implementation() -> None:
    """Digest of the shingle values of TEXTS as computed by the numpy code (commit 1d881ca)."""
    digest = hashlib.sha256()
    array = pa.array(TEXTS, pa.string())
    for map_digits in (False, True):
        for as_sets in (False, True):
            sets = word_shingles(array, 5, "fast", map_digits=map_digits, as_sets=as_sets)
            digest.update(sets.values.tobytes())
            digest.update(sets.offsets.tobytes())
        sets = char_shingles(array, 4, "fast", map_digits=map_digits)
        digest.update(sets.values.tobytes())
        digest.update(sets.offsets.tobytes())
    assert digest.hexdigest() == "55866f9a0bb60aa89d036c03d6f6be8de9c4c970bf1bc4001478c594ee974e92"


def test_word_and_window_hashes_equal_the_python_reference() -> None:
    spans = token_spans(pa.array(TEXTS, pa.string()), map_digits=False)
    words = [spans.data[s:s + n].tobytes() for s, n in zip(spans.starts.tolist(), spans.lengths.tolist())]
    assert any(len(w) > hash_kernel.LONG_WORD for w in words)
    hashes = word_hashes(spans).tolist()
    assert hashes == [reference_word_hash(w) for w in words]
    bounds = np.concatenate([[0], np.cumsum(spans.counts)]).tolist()
    for ngram in (1, 2, 5, 7):
        expected = [v for d in range(len(spans.counts))
                    for v in reference_windows(hashes[bounds[d]:bounds[d + 1]], ngram)]
        assert window_hashes(np.array(hashes, dtype=np.uint64), spans.counts, ngram).tolist() == expected
        fused = hash_kernel.shingle_values(spans.data, spans.offsets, spans.counts, ngram)
        assert fused.tolist() == expected


@pytest.mark.parametrize("length", [*range(0, 70), 255, 256, 257, 1000, 4099])
def test_xxh64_equals_the_xxhash_package(length: int) -> None:
    data = np.random.default_rng(length).integers(0, 256, length + 16).astype(np.uint8)
    assert hash_kernel._xxh64(data, 3, length) == xxhash.xxh64_intdigest(data[3:3 + length].tobytes())


def test_lower_map_is_utf8_lower_on_whole_texts() -> None:
    rng = np.random.default_rng(0)
    points = rng.integers(0, 0x110000, 50_000)
    points = points[(points < 0xD800) | (points > 0xDFFF)]
    text = "".join(map(chr, points.tolist()))
    expected = pc.utf8_lower(pa.array([text])).to_pylist()[0]
    assert "".join(chr(c) for c in lower_map()[points].tolist()) == expected


@settings(max_examples=200, deadline=None, derandomize=True)
@given(texts=st.lists(st.lists(st.sampled_from(TRICKY), max_size=30).map("".join), min_size=1, max_size=6))
def test_nfkc_of_the_unsafe_segments_is_nfkc_of_the_rows(texts: list[str]) -> None:
    array = pa.array(texts, pa.string())
    data, offsets = _utf8_view(array)
    segments = _unsafe_segments(data, offsets, code_point_classes())
    parts = [data[s:e].tobytes().decode() for s, e in segments.tolist()]
    normalized = [unicodedata.normalize("NFKC", p) for p in parts]
    new = "".join(normalized).encode()
    new_offsets = np.concatenate([[0], np.cumsum([len(p.encode()) for p in normalized])]).astype(np.int64)
    spliced, spliced_offsets = token_kernel.splice(data, offsets, segments, np.frombuffer(new, np.uint8)
                                                   if new else np.empty(0, np.uint8), new_offsets)
    rows = [spliced[a:b].tobytes().decode() for a, b in zip(spliced_offsets[:-1], spliced_offsets[1:])]
    assert rows == [unicodedata.normalize("NFKC", t) for t in texts]


def test_unsafe_segments_cover_every_unsafe_code_point_and_stay_in_their_rows() -> None:
    texts = ["plain", "e\u0301 and a\u0316\u0301", "\u0301 leading", "ﬁ", "", "x\u1100\u1161\u11a8y…"]
    data, offsets = _utf8_view(pa.array(texts))
    segments = _unsafe_segments(data, offsets, code_point_classes()).tolist()
    classes = code_point_classes()
    for row, text in enumerate(texts):
        start = int(offsets[row])
        position = start
        for c in text:
            size = len(c.encode())
            if classes[ord(c)] & NFKC_UNSAFE:
                assert any(s <= position and position + size <= e for s, e in segments), (text, c)
            position += size
    for s, e in segments:
        row = int(np.searchsorted(offsets, s, side="right")) - 1
        assert e <= offsets[row + 1]


def test_fold_words_retries_when_lowercasing_lengthens_the_text() -> None:
    # U+023A lowercases to U+2C65: 2 bytes become 3. A row of nothing else grows by half.
    texts = ["\u023a" * 1000, "Ⱥb Ⱥ"]
    expected = pc.utf8_lower(pa.array(texts)).to_pylist()
    assert normalize_words(pa.array(texts), map_digits=False).joined().to_pylist() == expected


def test_min_hashes_equal_the_plain_definition() -> None:
    sets = word_shingles(pa.array(TEXTS, pa.string()), 5, "fast", as_sets=False)
    perms = mm.Permutations(37, 3, "fast")
    keys = (sets.values >> np.uint64(32)).astype(np.uint64)
    expected = np.full((sets.num_docs, 37), 0xFFFFFFFF, dtype=np.uint64)
    for d in range(sets.num_docs):
        k = keys[sets.offsets[d]:sets.offsets[d + 1]]
        if len(k):
            h = (perms.a.astype(np.uint64)[:, None] * k[None, :] + perms.b.astype(np.uint64)[:, None]) & 0xFFFFFFFF
            expected[d] = h.min(axis=1)
    assert np.array_equal(mm.signatures(sets, perms), expected)
    counts = np.array([0, 3, 0], dtype=np.int64)
    empty = mm.signatures(ShingleSets(values=np.arange(3, dtype=np.uint64) << np.uint64(32),
                                      offsets=np.concatenate([[0], np.cumsum(counts)])), perms)
    assert (empty[[0, 2]] == 0xFFFFFFFF).all() and (empty[1] < 0xFFFFFFFF).all()
    assert window_counts(counts, 5).tolist() == [0, 1, 0]
