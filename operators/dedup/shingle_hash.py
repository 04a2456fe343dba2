"""The ``"fast"`` scheme's shingle hashes, vectorized over a batch with numpy ``uint64``.

Words are hashed from their UTF-8 bytes where they lie in the batch's buffer
(:class:`~operators.dedup.tokens.TokenSpans`), 8 bytes per load, without building a string
per word; the ``n`` word hashes of each window are combined as a polynomial over shifted
slices of all the batch's word hashes. This replaced ``split_pattern``, ``dictionary_encode``
and xxHash64 per distinct word, then a gather of ``n`` hashes per window: about 125 ms for
2,000 documents of 4.5 KB before, 35 after (bench/minhash_signatures.py, one core).
Arithmetic wraps modulo ``2**64``, as intended. Pure functions.
"""

from __future__ import annotations

import numpy as np
import xxhash

from operators.dedup.tokens import TokenSpans

_U64 = np.uint64
_WINDOW_MULTIPLIER = _U64(0xFF51AFD7ED558CCF)  # odd, 3 mod 4: P - 1 has one factor of 2
_FMIX_MULTIPLIER = _U64(0xFF51AFD7ED558CCD)  # MurmurHash3 fmix64 constants
_FINAL_MULTIPLIER = _U64(0xC4CEB9FE1A85EC53)
_LENGTH_SALT = _U64(0x243F6A8885A308D3)  # pi's fraction bits: an arbitrary odd constant
_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
_BLOCK = 1 << 16
"""Values per block in chains of elementwise passes: 512 KiB of ``uint64`` stays in a core's
L2 cache from one pass to the next (twice as fast as whole-batch passes on a 2 MiB L2)."""
_LONG_WORD = 256
"""Words longer than this many bytes are hashed one by one with xxHash64 (rare: hex, base64):
the vectorized loop makes one pass per 8 bytes of the longest word."""


def word_hashes(spans: TokenSpans) -> np.ndarray:
    """A 64-bit hash of every word's UTF-8 bytes (``uint64``, one per span), vectorized.

    Each word is read 8 bytes at a time by unaligned loads at its offset in the buffer (the
    bytes past its end masked off); the first chunk, salted with the length, and every
    later chunk are mixed in with the MurmurHash3 finalizer, a bijection, so two words of
    the same length up to 8 bytes never collide. Words over ``_LONG_WORD`` bytes (rare)
    take xxHash64, one call each, so that the chunk loop stays short. A pure function of
    the word's bytes: the same word hashes the same in any batch.
    """
    data, starts, lengths = spans.data, spans.starts, spans.lengths
    if not starts.size:
        return np.empty(0, dtype=np.uint64)
    # A uint64 view at every byte offset: element i is bytes [i, i + 8) (little-endian).
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    h = np.empty(len(starts), dtype=np.uint64)
    for b0 in range(0, len(starts), _BLOCK):  # blocks that stay in cache through the chain
        block, first, size = h[b0:b0 + _BLOCK], starts[b0:b0 + _BLOCK], lengths[b0:b0 + _BLOCK]
        block[:] = words[first]
        block &= _BYTE_MASKS.take(size, mode="clip")  # clip: the full mask for 8 bytes or more
        block ^= size.view(np.uint64) * _LENGTH_SALT
        _fmix64(block)
        more = np.flatnonzero(size > 8)  # bytes 8 to 15 (one word in 7 in English)
        part = words[first[more] + 8] & _BYTE_MASKS.take(size[more] - 8, mode="clip")
        part ^= block[more]
        block[more] = _fmix64(part)
    more = np.flatnonzero(lengths > 16) if lengths.max() > 16 else np.empty(0, dtype=np.int64)
    long_words = more[lengths[more] > _LONG_WORD]
    more, k = more[lengths[more] <= _LONG_WORD], 16
    while more.size:  # chunk k of the words longer than k bytes: a shrinking subset
        rest = lengths[more] - k
        part = words[starts[more] + k] & _BYTE_MASKS.take(rest, mode="clip")
        part ^= h[more]
        h[more] = _fmix64(part)
        k += 8
        more = more[rest > 8]
    if long_words.size:
        h[long_words] = np.fromiter((xxhash.xxh64_intdigest(data[s:s + n].tobytes()) for s, n in
                                     zip(starts[long_words].tolist(), lengths[long_words].tolist())),
                                    dtype=np.uint64, count=long_words.size)
    return h


def window_counts(token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Shingles per document before de-duplication: ``k - n + 1``, 1 if ``0 < k < n``, else 0."""
    return np.where(token_counts >= ngram, token_counts - ngram + 1,
                    np.minimum(token_counts, 1)).astype(np.int64)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (Appleby 2011), in place; a bijection. Returns ``h``."""
    h ^= h >> _U64(33)
    h *= _FMIX_MULTIPLIER
    h ^= h >> _U64(33)
    h *= _FINAL_MULTIPLIER
    h ^= h >> _U64(33)
    return h


def window_hashes(token_hashes: np.ndarray, token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Hash every window of ``ngram`` consecutive tokens of every document.

    ``token_hashes`` holds the tokens of all documents back to back; document ``d`` has
    ``token_counts[d]`` of them. A window ``t_1 .. t_n`` hashes to the polynomial
    ``t_1 P**(n-1) + ... + t_n`` modulo ``2**64`` (order-sensitive; for distinct windows of
    well-mixed token hashes a collision has probability about ``2**-63``), then to
    ``(x ^ x >> 32) * C``, a bijection whose high 32 bits (the MinHash key) depend on every
    bit of ``x``. The polynomial of the window starting at every token of the batch,
    windows that run into the next document included, is built by doubling (6 passes over
    contiguous slices for ``n = 5``); a mask then drops the windows that are not a
    document's own. A document with ``0 < k < ngram`` tokens has one window of its ``k``
    tokens, salted with ``k``.
    """
    windows = window_counts(token_counts, ngram)
    total = int(windows.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint64)
    token_starts = np.cumsum(token_counts) - token_counts
    window_starts = np.cumsum(windows) - windows
    padded = np.zeros(len(token_hashes) + ngram - 1, dtype=np.uint64)  # a window at every token
    padded[:len(token_hashes)] = token_hashes
    # Keep each document's first ``windows[d]`` positions, drop the rest (at most ngram - 1).
    keep = np.ones(len(token_hashes), dtype=bool)
    dropped = token_counts - windows
    for j in range(ngram - 1):
        more = dropped > j
        keep[token_starts[more] + windows[more] + j] = False
    every = np.empty(len(token_hashes), dtype=np.uint64)
    for j0 in range(0, len(every), _BLOCK):  # blocks that stay in cache through the passes
        j1 = min(j0 + _BLOCK, len(every))
        every[j0:j1] = _finish(_rolling_polynomial(padded[j0:j1 + ngram - 1], ngram))
    values = every[keep]
    short = np.flatnonzero((token_counts > 0) & (token_counts < ngram))
    if short.size:
        k = token_counts[short]
        h = np.zeros(short.size, dtype=np.uint64)
        for t in range(int(k.max())):
            more = np.flatnonzero(k > t)
            h[more] = h[more] * _WINDOW_MULTIPLIER + token_hashes[token_starts[short[more]] + t]
        values[window_starts[short]] = _finish(h ^ (k.astype(np.uint64) * _LENGTH_SALT))
    return values


def _finish(x: np.ndarray) -> np.ndarray:
    """``(x ^ x >> 32) * C`` in place: a bijection whose high 32 bits depend on every bit."""
    x ^= x >> _U64(32)
    x *= _FINAL_MULTIPLIER
    return x


def _rolling_polynomial(t: np.ndarray, n: int) -> np.ndarray:
    """``out[j] = t[j] P**(n-1) + t[j+1] P**(n-2) + ... + t[j+n-1]`` mod ``2**64``, every ``j``.

    By the binary expansion of ``n``: doubling a window (``w_2m[j] = w_m[j] P**m +
    w_m[j+m]``) and appending a token (``w_m+1[j] = w_m[j] P + t[j+m]``) cost two passes
    each, 2 * log2(n) passes in all instead of Horner's 2 n - 1.
    """
    acc, m = t, 1
    for bit in bin(n)[3:]:
        power = _U64(pow(int(_WINDOW_MULTIPLIER), m, 1 << 64))
        doubled = acc[:len(acc) - m] * power
        doubled += acc[m:]
        acc, m = doubled, 2 * m
        if bit == "1":
            appended = acc[:-1] * _WINDOW_MULTIPLIER
            appended += t[m:m + len(appended)]
            acc, m = appended, m + 1
    return acc if acc is not t else t.copy()
