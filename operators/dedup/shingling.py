"""Text normalization and shingling for near-duplicate detection.

A document becomes a set of 64-bit shingle hashes (Broder 1997, "On the resemblance and
containment of documents"): word n-grams (FineWeb uses word 5-grams) or character n-grams
of the normalized text. Two hashing schemes exist:

* ``"fast"``: every word is hashed from its UTF-8 bytes where they lie in the batch's
  buffer (8-byte loads mixed with the MurmurHash3 finalizer; each code point, for
  character shingles, with splitmix64), and the n token hashes of every window are
  combined as a polynomial modulo ``2**64``, then mixed (:mod:`operators.dedup.shingle_hash`;
  compiled loops in :mod:`operators.dedup.token_kernel`). Values use all 64 bits.
* ``"datasketch"``: each shingle's UTF-8 bytes (words joined by single spaces) are hashed
  with datasketch's ``sha1_hash32``, one Python call per shingle, so that signatures can be
  compared bit for bit with ``datasketch.MinHash``. Values are below ``2**32``. Use it for
  compatibility checks, not at scale.

Normalization runs on the bytes of the whole batch (:mod:`operators.dedup.tokens`). Pure
functions of their input: no I/O, no randomness, no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.dedup.shingle_hash import window_counts, window_hashes
from operators.dedup import hash_kernel
from operators.dedup.tokens import DECIMAL_DIGIT, SEPARATOR_RUN, nfkc, normalize_words
from operators.hashing import splitmix64

# nfkc is imported by exact.normalize_text; the patterns are part of the documented semantics.
__all__ = ["DECIMAL_DIGIT", "SEPARATOR_RUN", "Bits", "Scheme", "ShingleSets", "char_shingles", "narrowed", "nfkc",
           "normalize_for_near_dup", "word_shingles"]

Scheme = Literal["fast", "datasketch"]
"""Hashing scheme of shingles and permutations (see the module docstring)."""

Bits = Literal[32, 64]
"""Width of shingle hashes: 64, or 32 for verification sets (:func:`narrowed`)."""

_U64 = np.uint64
_CODE_POINT_SALT = _U64(0x452821E638D01377)


@dataclass(frozen=True, eq=False)
class ShingleSets:
    """The shingle sets of a batch, flattened (CSR layout).

    Attributes:
        values: shingle hashes of all documents (``uint64``; ``uint32`` where made with
            ``bits=32``); document ``i`` owns
            ``values[offsets[i]:offsets[i + 1]]``, sorted ascending without repeats.
        offsets: ``int64`` array of length ``num_docs + 1``, starting at 0.
    """

    values: np.ndarray
    offsets: np.ndarray

    @property
    def num_docs(self) -> int:
        """Number of documents (empty ones included)."""
        return len(self.offsets) - 1

    @property
    def sizes(self) -> np.ndarray:
        """Number of distinct shingles of each document (``int64``)."""
        return np.diff(self.offsets)

    def doc(self, i: int) -> np.ndarray:
        """Shingle set of document ``i``: a sorted view, no repeats."""
        return self.values[self.offsets[i]:self.offsets[i + 1]]


def normalize_for_near_dup(text: pa.Array | pa.ChunkedArray, *, map_digits: bool) -> pa.Array:
    """Normalize text so that trivially different copies compare equal.

    Steps: Unicode NFKC (fullwidth forms and ligatures fold to their plain letters),
    lowercase, every punctuation (``\\p{P}``) or symbol (``\\p{S}``) code point replaced by a
    space, optionally every decimal digit (``\\p{Nd}``) replaced by ``"0"``, whitespace runs
    (Unicode-aware, as in :func:`operators.dedup.exact.normalize_text`) collapsed to one
    space, ends stripped (U+001C..U+001F too, as Arrow's ``utf8_trim_whitespace``). Nulls
    stay null. Computed on the batch's bytes (:mod:`operators.dedup.tokens`), with the same
    result as the regex pipeline ``replace_substring_regex(SEPARATOR_RUN, " ")`` then
    ``utf8_trim_whitespace``.

    Examples (``map_digits=True``)::

        "Hello,   World!"            -> "hello world"
        "hello world"                -> "hello world"
        "HELLO -- world..."          -> "hello world"
        "Ｈｅｌｌｏ\\u3000World"       -> "hello world"
        "Call 555-1234 now"          -> "call 000 0000 now"   (map_digits=False: "call 555 1234 now")
        "e-mail: a@b.c"              -> "e mail a b c"

    Args:
        text: string column.
        map_digits: replace every decimal digit by ``"0"``, so copies differing only in
            numbers (dates, counters, prices) normalize the same.

    Returns:
        The normalized strings (``large_string``), one per input row, as a single ``pa.Array``.
    """
    return normalize_words(text, map_digits=map_digits).joined()


def word_shingles(texts: pa.Array | pa.ChunkedArray, ngram: int, scheme: Scheme,
                  *, map_digits: bool = False, as_sets: bool = True, bits: Bits = 64) -> ShingleSets:
    """Word n-gram shingle sets of each document.

    Words are the space-separated tokens of :func:`normalize_for_near_dup`'s output; a
    shingle is a window of ``ngram`` consecutive words. A document with at least one but
    fewer than ``ngram`` words yields one shingle made of all its words; an empty (or null,
    or punctuation-only) document yields none.

    Args:
        texts: raw document texts.
        ngram: words per shingle (FineWeb: 5).
        scheme: ``"fast"`` (:mod:`operators.dedup.shingle_hash`) or
            ``"datasketch"`` (``sha1_hash32`` of the space-joined words, bit-compatible with
            ``datasketch.MinHash``).
        map_digits: passed to :func:`normalize_for_near_dup`.
        as_sets: de-duplicate and sort each document's shingles. MinHash signatures do not
            need it (a minimum over repeats is the same), and skipping it halves the time
            (the sort costs as much as everything before it); exact Jaccard does.
        bits: 64, or 32 for ``uint32`` values (see :func:`narrowed`).

    Returns:
        The per-document shingle hashes: sorted and unique with ``as_sets``, else in
        document order with repeats.
    """
    _check_arguments(ngram, scheme)
    words = normalize_words(texts, map_digits=map_digits)
    windows = window_counts(words.counts, ngram)
    if scheme == "fast":
        values = hash_kernel.shingle_values(words.data, words.offsets, words.counts, int(ngram))
    else:  # "datasketch", checked above
        docs = (s.split(" ") for s in words.joined().to_pylist() if s)
        values = _sha1_shingles((" ".join(words[i:i + ngram]) for words in docs
                                 for i in range(max(len(words) - ngram + 1, 1))), int(windows.sum()))
    values = narrowed(values, scheme, bits)
    if not as_sets:
        offsets = np.zeros(len(windows) + 1, dtype=np.int64)
        np.cumsum(windows, out=offsets[1:])
        return ShingleSets(values=values, offsets=offsets)
    return _as_sets(values, windows)


def char_shingles(texts: pa.Array | pa.ChunkedArray, ngram: int, scheme: Scheme,
                  *, map_digits: bool = False, bits: Bits = 64) -> ShingleSets:
    """Character n-gram shingle sets of each document (spaces included).

    Characters are the Unicode code points of :func:`normalize_for_near_dup`'s output. As
    for words, a non-empty document shorter than ``ngram`` yields one shingle of all its
    characters and an empty one yields none.

    Args:
        texts: raw document texts.
        ngram: code points per shingle.
        scheme: ``"fast"`` (splitmix64 per code point, vectorized window combine) or
            ``"datasketch"`` (``sha1_hash32`` of each n-gram's UTF-8 bytes).
        map_digits: passed to :func:`normalize_for_near_dup`.
        bits: 64, or 32 for ``uint32`` values (see :func:`narrowed`).

    Returns:
        The de-duplicated, per-document sorted shingle hashes.
    """
    _check_arguments(ngram, scheme)
    normalized = normalize_for_near_dup(texts, map_digits=map_digits)
    counts = pc.utf8_length(normalized).fill_null(0).to_numpy().astype(np.int64)
    windows = window_counts(counts, ngram)
    strings = normalized.fill_null("").to_pylist()
    if scheme == "fast":
        # One UTF-32 decode of the whole batch; documents are recovered from ``counts``.
        code_points = np.frombuffer("".join(strings).encode("utf-32-le"), dtype="<u4")
        token_hashes = splitmix64(code_points.astype(np.uint64) ^ _CODE_POINT_SALT)
        values = window_hashes(token_hashes, counts, ngram)
    else:  # "datasketch", checked above
        values = _sha1_shingles(
            (s[i:i + ngram] for s in strings if s
             for i in range(max(len(s) - ngram + 1, 1))), int(windows.sum()))
    return _as_sets(narrowed(values, scheme, bits), windows)


def narrowed(values: np.ndarray, scheme: Scheme, bits: Bits) -> np.ndarray:
    """Shingle hashes cut to ``bits``: with 32, the top half of each ``"fast"`` hash (its
    bits are mixed evenly), or a ``"datasketch"`` hash, already below ``2**32``, as ``uint32``.

    Half the bytes to sort, move and merge, for exact Jaccard (``minhash_dedup.keep``): two
    distinct shingles then collide with probability ``2**-32``, so two sets of 2,000
    shingles share at most about 0.001 false shingles on average, and each moves their
    Jaccard by at most ``2 / (|A | B| - 1)``."""
    if bits == 64:
        return values
    if bits != 32:
        raise ValueError(f"bits must be 32 or 64, got {bits!r}")
    return (values >> np.uint64(32) if scheme == "fast" else values).astype(np.uint32)


def _check_arguments(ngram: int, scheme: str) -> None:
    if not isinstance(ngram, (int, np.integer)) or ngram < 1:
        raise ValueError(f"ngram must be a positive integer, got {ngram!r}")
    if scheme not in ("fast", "datasketch"):
        raise ValueError(f"scheme must be 'fast' or 'datasketch', got {scheme!r}")


def _sha1_shingles(shingles, count: int) -> np.ndarray:
    """datasketch's ``sha1_hash32`` of each shingle string (a Python loop: compatibility only)."""
    # Imported here: importing datasketch pulls in scipy, which the fast path never needs.
    from datasketch.hashfunc import sha1_hash32

    return np.fromiter((sha1_hash32(s.encode("utf-8")) for s in shingles),
                       dtype=np.uint64, count=count)


LOOP_MIN_SHINGLES = 32
"""From this many shingles per document on average, :func:`_as_sets` sorts each document
on its own: long documents sort far faster one by one than in the global sort, whose ranks
over millions of values miss the cache (docs/benchmarks.md)."""


def _as_sets(values: np.ndarray, windows: np.ndarray) -> ShingleSets:
    """Sort each document's shingle hashes and drop repeats.

    Long documents are sorted one by one (see :data:`LOOP_MIN_SHINGLES`). Many short ones
    go through one vectorized pass instead, equivalent to ``np.lexsort((values, doc))``
    then masking repeats but faster: each value is replaced by its rank
    in one global argsort, so that ``doc * n + rank`` is a single ``int64`` key whose plain
    sort orders by document, then value. Equal values of a document get consecutive
    ranks, so they end up adjacent.
    """
    n, num_docs = len(values), len(windows)
    if num_docs and n >= LOOP_MIN_SHINGLES * num_docs:
        return _sets_one_by_one(values, windows)
    order = np.argsort(values)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    doc = np.repeat(np.arange(num_docs, dtype=np.int64), windows)
    key = np.sort(doc * n + rank)  # < num_docs * n: far below 2**63 for any real batch
    doc, rank = np.divmod(key, n) if n else (key, key)
    values = values[order[rank]]
    keep = np.ones(n, dtype=bool)
    keep[1:] = (values[1:] != values[:-1]) | (doc[1:] != doc[:-1])
    sizes = np.bincount(doc[keep], minlength=num_docs)
    offsets = np.zeros(num_docs + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return ShingleSets(values=np.ascontiguousarray(values[keep]), offsets=offsets)


def _sets_one_by_one(values: np.ndarray, windows: np.ndarray) -> ShingleSets:
    bounds = np.zeros(len(windows) + 1, dtype=np.int64)
    np.cumsum(windows, out=bounds[1:])
    values = values.copy()  # sorted in place, document by document
    for begin, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        values[begin:end].sort()  # numpy's sort (SIMD) beats a compiled loop's np.sort
    # the repeats go in one compiled pass: a mask and a copy per document were half the time
    offsets = hash_kernel.drop_sorted_repeats(values, bounds)
    return ShingleSets(values=values[:offsets[-1]].copy(), offsets=offsets)
