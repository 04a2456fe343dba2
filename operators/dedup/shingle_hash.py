"""The ``"fast"`` scheme's shingle hashes: word hashes from UTF-8 bytes, window polynomials.

Words are hashed from their bytes where they lie in the batch's normalized buffer
(:class:`~operators.dedup.tokens.TokenSpans`), without building a string per word; the
``n`` word hashes of each window are combined as a polynomial modulo ``2**64``. The loops
are compiled (:mod:`operators.dedup.hash_kernel`); words over ``LONG_WORD`` bytes (rare:
hex, base64) take xxHash64. The values are those of the vectorized numpy implementation
this replaced, bit for bit (the tests pin a digest from before and compare with a plain
Python reference), so indexes built by earlier runs stay valid. Pure functions.
"""

from __future__ import annotations

import numpy as np

from operators.dedup import hash_kernel
from operators.dedup.hash_kernel import LONG_WORD
from operators.dedup.tokens import TokenSpans

__all__ = ["LONG_WORD", "window_counts", "window_hashes", "word_hashes"]


def word_hashes(spans: TokenSpans) -> np.ndarray:
    """A 64-bit hash of every word's UTF-8 bytes (``uint64``, one per span).

    The first 8 bytes, salted with the length, and every later 8 are mixed in with the
    MurmurHash3 finalizer (a bijection, so two words of the same length up to 8 bytes
    never collide); words over :data:`LONG_WORD` bytes take xxHash64. A pure function of
    the word's bytes: the same word hashes the same in any batch.
    """
    return hash_kernel.word_hashes(spans.data, spans.starts, spans.lengths)


def window_counts(token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Shingles per document before de-duplication: ``k - n + 1``, 1 if ``0 < k < n``, else 0."""
    return np.where(token_counts >= ngram, token_counts - ngram + 1,
                    np.minimum(token_counts, 1)).astype(np.int64)


def window_hashes(token_hashes: np.ndarray, token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Hash every window of ``ngram`` consecutive tokens of every document.

    ``token_hashes`` holds the tokens of all documents back to back; document ``d`` has
    ``token_counts[d]`` of them. A window ``t_1 .. t_n`` hashes to the polynomial
    ``t_1 P**(n-1) + ... + t_n`` modulo ``2**64`` (order-sensitive; for distinct windows of
    well-mixed token hashes a collision has probability about ``2**-63``), then to
    ``(x ^ x >> 32) * C``, a bijection whose high 32 bits (the MinHash key) depend on every
    bit of ``x``. A document with ``0 < k < ngram`` tokens has one window of its ``k``
    tokens, salted with ``k``.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be a positive integer, got {ngram!r}")
    return hash_kernel.window_hashes(np.ascontiguousarray(token_hashes, dtype=np.uint64),
                                      np.ascontiguousarray(token_counts, dtype=np.int64), int(ngram))
