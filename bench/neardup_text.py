"""Normalization, word shingles, exact Jaccard and MinHash sketches for the near-duplicate benchmark.

Shared by the corpus builder (bench/neardup_corpus.py), the ground truth
(bench/neardup_truth.py), the datasketch baseline and the ceiling (bench/neardup.py).

Normalization: Unicode NFKC, lowercase, every punctuation or symbol character (Unicode
categories P* and S*, including ``_``) replaced by a space, split on whitespace. Shingles:
the SET of word 5-grams of a document (a document of fewer than 5 words has one shingle, its
whole word sequence), held as sorted unique 64-bit hashes (xxh64 per word, then an
order-sensitive mix of the 5 word hashes).
"""

from __future__ import annotations

import functools
import sys
import unicodedata

import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHash

NGRAM = 5
LSH_PERM = 256
_PERM_SEED = 7
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD], dtype=np.uint64)


@functools.cache
def _punct_tables() -> tuple[dict[int, str], bytes]:
    """Every Unicode punctuation (P*) and symbol (S*) code point -> space, for str and ASCII bytes."""
    table = {cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] in "PS"}
    ascii_punct = bytes(cp for cp in range(128) if cp in table)
    return table, bytes.maketrans(ascii_punct, b" " * len(ascii_punct))


def normalize(text: str) -> str:
    """NFKC, lowercase, punctuation and symbols to spaces (whitespace is collapsed by split)."""
    table, ascii_table = _punct_tables()
    text = unicodedata.normalize("NFKC", text).lower()
    if text.isascii():  # bytes.translate is several times faster than str.translate
        return text.encode().translate(ascii_table).decode()
    return text.translate(table)


def words(text: str) -> list[str]:
    """The normalized words of ``text``."""
    return normalize(text).split()


def shingle_strings(ws: list[str], n: int = NGRAM) -> set[str]:
    """The set of word n-grams, each joined with single spaces."""
    if len(ws) < n:
        return {" ".join(ws)} if ws else set()
    return {" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)}


_word_hash: dict[str, int] = {}


def shingle_hashes(ws: list[str], n: int = NGRAM) -> np.ndarray:
    """The set of word n-grams as sorted unique 64-bit hashes."""
    if not ws:
        return np.empty(0, np.uint64)
    get = _word_hash.get
    hw = np.fromiter((get(w) or _word_hash.setdefault(w, xxhash.xxh64_intdigest(w.encode())) for w in ws),
                     np.uint64, len(ws))
    m = min(n, len(ws))
    h = np.zeros(len(ws) - m + 1, np.uint64)
    for j in range(m):
        h += hw[j:len(ws) - m + 1 + j] * _MIX[j]
    h ^= h >> np.uint64(33)  # murmur3 fmix64: the sum above is linear, this avalanches it
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return np.unique(h)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def utf8_len(s: str) -> int:
    """The size of ``s`` in UTF-8 bytes."""
    return len(s.encode())


class Sketcher:
    """MinHash signatures over precomputed 64-bit shingle hashes (datasketch affine32 scheme)."""

    def __init__(self, num_perm: int = LSH_PERM) -> None:
        self.a, self.b = MinHash(num_perm=num_perm, seed=_PERM_SEED).permutations
        self.num_perm = num_perm

    def __call__(self, hashes: np.ndarray) -> LeanMinHash:
        if len(hashes):
            sig = ((hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)[:, None] * self.a + self.b).min(axis=0)
        else:
            sig = np.full(self.num_perm, 0xFFFFFFFF, np.uint32)
        return LeanMinHash(seed=_PERM_SEED, hashvalues=sig, scheme="affine32")
