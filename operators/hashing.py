"""Hashing primitives shared across families: a 64-bit mix, per-value string hashes, and
dictionary encoding of a column.

Used by near-duplicate detection (character shingles, MinHash band hashes, LSH bucket keys,
the keep stage's per-distinct-text work), by the embedding segment tokenizer, and by the
generic shuffle in :mod:`jobs.shuffle` (partition keys). They live here rather than in a
family so that none of those users depends on another family's modules. Pure functions of
their input: no I/O, no randomness, no state.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["byte_hashes", "distinct_values", "splitmix64", "string_hashes", "utf8_spans"]

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: splitmix64's increment


def distinct_values(column: pa.Array | pa.ChunkedArray, *, nulls: bool = False) -> tuple[pa.Array, np.ndarray]:
    """(distinct values, each row's index into them), one dictionary for all chunks. With
    ``nulls`` a null is a distinct value of its own; otherwise its index is 0."""
    encoded = pc.dictionary_encode(column, null_encoding="encode" if nulls else "mask")
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return pa.array([], column.type), np.empty(0, np.int64)
    indices = np.concatenate([pc.fill_null(c.indices, 0).to_numpy(zero_copy_only=False) for c in chunks])
    return chunks[0].dictionary, indices


def string_hashes(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash (``uint64``) of each value's string form: BLAKE2b of each distinct value,
    so the cost is per distinct value, not per row. A null hashes as the first distinct value."""
    dictionary, indices = distinct_values(column.cast(pa.string()))
    distinct = np.array([int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
                         for v in dictionary.to_pylist()] or [0], dtype=np.uint64)
    return distinct[indices]


def splitmix64(x: np.ndarray) -> np.ndarray:
    """One splitmix64 step on ``uint64`` values: a bijective 64-bit avalanche mix.

    Steele, Lea and Flood 2014, "Fast splittable pseudorandom number generators" (OOPSLA).
    Arithmetic wraps modulo ``2**64``, as intended.
    """
    x = x + _GOLDEN
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


_FNV_OFFSET = _U64(0xCBF29CE484222325)
_FNV_PRIME = _U64(0x100000001B3)


@numba.njit(cache=True, nogil=True)
def _fnv1a_spans(data: np.ndarray, offsets: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(out)):
        h = _FNV_OFFSET
        for k in range(offsets[i], offsets[i + 1]):
            h = (h ^ _U64(data[k])) * _FNV_PRIME
        out[i] = h


def byte_hashes(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash (``uint64``) of each string value's UTF-8 bytes, for values that are
    mostly distinct (ids), where :func:`string_hashes` pays a Python call per value.

    FNV-1a over the bytes (Fowler, Noll and Vo), compiled, then :func:`splitmix64` so that
    every output bit depends on every input byte. Not for adversarial input: fine for
    uniform sampling, not for keys that must not collide. A null hashes as ``""``.
    """
    data, starts = utf8_spans(column)
    out = np.empty(len(starts) - 1, np.uint64)
    _fnv1a_spans(data, starts, out)
    return splitmix64(out)


def utf8_spans(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A string column's UTF-8 bytes and each value's start in them (one more than the
    values: the last is the end), without copying the bytes; a null is an empty span."""
    array = column.cast(pa.large_string())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if not len(array):
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    _, offsets, data = array.buffers()
    starts = np.frombuffer(offsets, np.int64)[array.offset:array.offset + len(array) + 1]
    return (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)), starts
