"""Compiled kernels (numba) for the ``"fast"`` scheme's shingle hashes and MinHash.

Words are hashed from their UTF-8 bytes where they lie in the normalized buffer
(:mod:`operators.dedup.token_kernel`), 8 bytes per load; each document's windows of
``n`` word hashes roll as a polynomial modulo ``2**64``; MinHash takes the minimum of
affine 32-bit hash functions over a document's keys with the functions on SIMD lanes.
Every value is bit-identical to the vectorized numpy code these replaced (a test pins
the digest of a corpus's shingle hashes from before), so indexes built by earlier runs
stay valid. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from operators.dedup.token_kernel import compiled as _jit

_U64 = np.uint64
_FMIX_MULTIPLIER = _U64(0xFF51AFD7ED558CCD)  # MurmurHash3 fmix64 constants
_FINAL_MULTIPLIER = _U64(0xC4CEB9FE1A85EC53)
_LENGTH_SALT = _U64(0x243F6A8885A308D3)
_WINDOW_MULTIPLIER = _U64(0xFF51AFD7ED558CCF)
LONG_WORD = 256
"""Words longer than this many bytes (rare: hex, base64) are hashed with xxHash64 instead
of the chunk loop, as the numpy implementation did."""

_jit_fast = numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=True)  # lets LLVM vectorize min


@_jit
def _fmix64(h: np.uint64) -> np.uint64:
    h ^= h >> _U64(33)
    h *= _FMIX_MULTIPLIER
    h ^= h >> _U64(33)
    h *= _FINAL_MULTIPLIER
    h ^= h >> _U64(33)
    return h


@intrinsic
def _load8(typingctx, array, at):  # noqa: ARG001 (numba's intrinsic signature)
    """The 8 bytes at ``array[at]`` as one native (little-endian on x86 and ARM) ``uint64``,
    an unaligned load; the caller guarantees 8 bytes are there (:data:`PADDING` in tokens)."""
    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.gep(data.data, [args[1]])
        return builder.load(builder.bitcast(address, ir.IntType(64).as_pointer()), align=1)
    return types.uint64(array, types.int64), codegen


_BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


@_jit
def _chunk(data: np.ndarray, at: int, size: int) -> np.uint64:
    """Bytes ``[at, at + min(size, 8))`` as a little-endian ``uint64`` (the rest zero)."""
    return _load8(data, at) & _BYTE_MASKS[min(size, 8)]


@_jit
def _word_hash(data: np.ndarray, s: int, n: int) -> np.uint64:
    """The ``"fast"`` hash of the word ``data[s:s + n]`` (see :func:`word_hashes`)."""
    if n > LONG_WORD:
        return _xxh64(data, s, n)
    x = _fmix64(_chunk(data, s, n) ^ (_U64(n) * _LENGTH_SALT))
    k = 8
    while k < n:
        x = _fmix64(_chunk(data, s + k, n - k) ^ x)
        k += 8
    return x


@_jit
def word_hashes(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The ``"fast"`` 64-bit hash of every word.

    The first 8 bytes, salted with the length, then every further 8 are mixed in with the
    MurmurHash3 finalizer (Appleby 2011), a bijection: two words of the same length up to
    8 bytes never collide. Words over :data:`LONG_WORD` bytes (rare: hex, base64) take
    xxHash64 instead.
    """
    h = np.empty(len(starts), dtype=np.uint64)
    for w in range(len(starts)):
        h[w] = _word_hash(data, starts[w], lengths[w])
    return h


_P1 = _U64(0x9E3779B185EBCA87)  # xxHash64 primes
_P2 = _U64(0xC2B2AE3D27D4EB4F)
_P3 = _U64(0x165667B19E3779F9)
_P4 = _U64(0x85EBCA77C2B2AE63)
_P5 = _U64(0x27D4EB2F165667C5)


@_jit
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << _U64(r)) | (x >> _U64(64 - r))


@_jit
def _xxh_round(acc: np.uint64, lane: np.uint64) -> np.uint64:
    return _rotl(acc + lane * _P2, 31) * _P1


@_jit
def _xxh64(data: np.ndarray, s: int, n: int) -> np.uint64:
    """xxHash64 (seed 0) of ``data[s:s + n]``, as the ``xxhash`` package computes it."""
    end, i = s + n, s
    if n >= 32:
        v1, v2, v3, v4 = _P1 + _P2, _P2, _U64(0), _U64(0) - _P1
        while i + 32 <= end:
            v1 = _xxh_round(v1, _chunk(data, i, 8))
            v2 = _xxh_round(v2, _chunk(data, i + 8, 8))
            v3 = _xxh_round(v3, _chunk(data, i + 16, 8))
            v4 = _xxh_round(v4, _chunk(data, i + 24, 8))
            i += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h = (h ^ _xxh_round(_U64(0), v)) * _P1 + _P4
    else:
        h = _P5
    h += _U64(n)
    while i + 8 <= end:
        h ^= _xxh_round(_U64(0), _chunk(data, i, 8))
        h = _rotl(h, 27) * _P1 + _P4
        i += 8
    if i + 4 <= end:
        h ^= _chunk(data, i, 4) * _P1
        h = _rotl(h, 23) * _P2 + _P3
        i += 4
    while i < end:
        h ^= _U64(data[i]) * _P5
        h = _rotl(h, 11) * _P1
        i += 1
    h ^= h >> _U64(33)
    h *= _P2
    h ^= h >> _U64(29)
    h *= _P3
    return h ^ (h >> _U64(32))


@_jit
def _finish(x: np.uint64) -> np.uint64:
    x ^= x >> _U64(32)
    return x * _FINAL_MULTIPLIER


@_jit
def window_hashes(token_hashes: np.ndarray, token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Hash of every window of ``ngram`` consecutive tokens of every document.

    A window ``t_1 .. t_n`` hashes to ``t_1 P**(n-1) + ... + t_n`` modulo ``2**64``, then
    ``(x ^ x >> 32) * C``; a document with ``0 < k < ngram`` tokens has one window of its
    ``k`` tokens, salted with ``k``. Windows never run across documents.
    """
    total = 0
    for d in range(len(token_counts)):
        k = token_counts[d]
        total += k - ngram + 1 if k >= ngram else min(k, 1)
    values = np.empty(total, dtype=np.uint64)
    t0, v = 0, 0
    for d in range(len(token_counts)):
        k = token_counts[d]
        if 0 < k < ngram:
            x = _U64(0)
            for t in range(k):
                x = x * _WINDOW_MULTIPLIER + token_hashes[t0 + t]
            values[v] = _finish(x ^ (_U64(k) * _LENGTH_SALT))
            v += 1
        for j in range(k - ngram + 1):
            x = _U64(0)
            for t in range(ngram):
                x = x * _WINDOW_MULTIPLIER + token_hashes[t0 + j + t]
            values[v] = _finish(x)
            v += 1
        t0 += k
    return values


@_jit
def shingle_values(data: np.ndarray, offsets: np.ndarray, counts: np.ndarray, ngram: int) -> np.ndarray:
    """``window_hashes(word_hashes(...), counts, ngram)`` straight from :func:`fold_words`'
    output (with its padding), without the per-word arrays of the whole batch.

    Each row's word starts, then word hashes, go to scratch arrays, then its windows roll: ``W_j+1 =
    W_j P - t_j P**n + t_j+n`` modulo ``2**64`` is the window polynomial in two products
    instead of ``n``.
    """
    total, longest = 0, 0
    for d in range(len(counts)):
        k = counts[d]
        total += k - ngram + 1 if k >= ngram else min(k, 1)
        longest = max(longest, k)
    power = _U64(1)
    for _ in range(ngram):
        power *= _WINDOW_MULTIPLIER
    values = np.empty(total, dtype=np.uint64)
    words = np.empty(longest, dtype=np.uint64)
    starts = np.empty(longest + 1, dtype=np.int64)
    v = 0
    for d in range(len(counts)):
        k = counts[d]
        if k == 0:
            continue
        begin, end = offsets[d], offsets[d + 1]
        starts[0], t = begin, 1
        for i in range(begin, end - 1):  # branch-free, as in word_spans
            starts[t] = i + 1
            t += data[i] == 32
        starts[k] = end + 1
        for j in range(k):
            words[j] = _word_hash(data, starts[j], starts[j + 1] - 1 - starts[j])
        x = _U64(0)
        for j in range(min(k, ngram)):
            x = x * _WINDOW_MULTIPLIER + words[j]
        if k < ngram:
            values[v] = _finish(x ^ (_U64(k) * _LENGTH_SALT))
            v += 1
            continue
        values[v] = _finish(x)
        v += 1
        for j in range(ngram, k):
            x = x * _WINDOW_MULTIPLIER - words[j - ngram] * power + words[j]
            values[v] = _finish(x)
            v += 1
    return values


@_jit_fast
def min_hashes(keys: np.ndarray, doc_offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MinHash signature of every document: ``min((a_i k + b_i) mod 2**32)`` over its keys.

    ``keys`` (``uint32``) of document ``d`` are ``keys[doc_offsets[d]:doc_offsets[d + 1]]``;
    a document without keys keeps ``2**32 - 1`` everywhere. The loop over the hash
    functions is innermost and branch-free, so that LLVM runs it on SIMD lanes (faster
    than the numpy passes it replaced).
    """
    num_perm = len(a)
    result = np.empty((len(doc_offsets) - 1, num_perm), dtype=np.uint32)
    row = np.empty(num_perm, dtype=np.uint32)
    for d in range(len(doc_offsets) - 1):
        row[:] = np.uint32(0xFFFFFFFF)
        for j in range(doc_offsets[d], doc_offsets[d + 1]):
            k = keys[j]
            for i in range(num_perm):
                h = np.uint32(a[i] * k + b[i])
                row[i] = h if h < row[i] else row[i]
        result[d] = row
    return result


@_jit
def sorted_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """``|A & B| / |A | B|`` of two sorted arrays without repeats, by one merge; 0.0 for
    two empty sets."""
    if len(a) == 0 and len(b) == 0:
        return 0.0
    i, j, common = 0, 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            common += 1
            i += 1
            j += 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    return common / (len(a) + len(b) - common)


@_jit
def drop_sorted_repeats(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Drop the repeats of each document's sorted run ``values[bounds[d]:bounds[d + 1]]`` in
    place, moving the kept values to the front; returns the new offsets (``len(bounds)``)."""
    offsets = np.zeros(len(bounds), dtype=np.int64)
    w = 0
    for d in range(len(bounds) - 1):
        for i in range(bounds[d], bounds[d + 1]):
            if i == bounds[d] or values[i] != values[i - 1]:
                values[w] = values[i]
                w += 1
        offsets[d + 1] = w
    return offsets
