"""Text normalization and shingling for near-duplicate detection.

A document becomes a set of 64-bit shingle hashes (Broder 1997, "On the resemblance and
containment of documents"): word n-grams (FineWeb uses word 5-grams) or character n-grams
of the normalized text. Two hashing schemes exist:

* ``"fast"``: each distinct word of a batch is hashed once with xxHash64 (each code point,
  for character shingles, with the splitmix64 finalizer), and the n token hashes of every
  window are combined with vectorized numpy ``uint64`` arithmetic. Values use all 64 bits.
* ``"datasketch"``: each shingle's UTF-8 bytes (words joined by single spaces) are hashed
  with datasketch's ``sha1_hash32``, one Python call per shingle, so that signatures can be
  compared bit for bit with ``datasketch.MinHash``. Values are below ``2**32``. Use it for
  compatibility checks, not at scale.

Pure functions of their input: no I/O, no randomness, no state.
"""

from __future__ import annotations

import unicodedata

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

Scheme = Literal["fast", "datasketch"]
"""Hashing scheme of shingles and permutations (see the module docstring)."""

# Whitespace as in exact.normalize_text (RE2's \s is ASCII-only, so \p{Z} adds Unicode
# spaces and separators: U+00A0, U+2028, U+3000, ...), plus punctuation and symbols.
SEPARATOR_RUN = r"[\s\x{0b}\x{85}\p{Z}\p{P}\p{S}]+"
DECIMAL_DIGIT = r"\p{Nd}"

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: splitmix64's increment
_COMBINE_MULTIPLIER = _U64(0xFF51AFD7ED558CCD)  # odd (MurmurHash3 fmix64 constant)
_WINDOW_SEED = _U64(0x243F6A8885A308D3)  # pi's fraction bits: an arbitrary non-zero start
_CODE_POINT_SALT = _U64(0x452821E638D01377)


@dataclass(frozen=True, eq=False)
class ShingleSets:
    """The shingle sets of a batch, flattened (CSR layout).

    Attributes:
        values: ``uint64`` shingle hashes of all documents; document ``i`` owns
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
        """Shingle set of document ``i``: a sorted ``uint64`` view, no repeats."""
        return self.values[self.offsets[i]:self.offsets[i + 1]]


def nfkc(text: pa.Array) -> pa.Array:
    """NFKC, applied only to the rows that are not already in NFKC.

    ``unicodedata.is_normalized`` is a quick check in C (about 5 us for 4.5 KB); most web
    text passes it (79% of the benchmark corpus), and normalizing costs about 12 times more.
    """
    needs = pa.array([s is not None and not unicodedata.is_normalized("NFKC", s) for s in text.to_pylist()],
                     pa.bool_())
    if not pc.any(needs).as_py():
        return text
    return pc.replace_with_mask(text, needs, pc.utf8_normalize(text.filter(needs), form="NFKC"))


def normalize_for_near_dup(text: pa.Array | pa.ChunkedArray, *, map_digits: bool) -> pa.Array:
    """Normalize text so that trivially different copies compare equal.

    Steps: Unicode NFKC (fullwidth forms and ligatures fold to their plain letters),
    lowercase, every punctuation (``\\p{P}``) or symbol (``\\p{S}``) code point replaced by a
    space, optionally every decimal digit (``\\p{Nd}``) replaced by ``"0"``, whitespace runs
    (Unicode-aware, as in :func:`operators.dedup.exact.normalize_text`) collapsed to one
    space, ends stripped. Nulls stay null.

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
        The normalized strings, one per input row, as a single ``pa.Array``.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks() if text.num_chunks else pa.array([], text.type)
    text = nfkc(text)
    text = pc.utf8_lower(text)
    if map_digits:
        text = pc.replace_substring_regex(text, pattern=DECIMAL_DIGIT, replacement="0")
    # One pass for both rules: punctuation and symbols become spaces, and every run of
    # spaces, punctuation and symbols becomes a single space (same result as two passes).
    text = pc.replace_substring_regex(text, pattern=SEPARATOR_RUN, replacement=" ")
    return pc.utf8_trim_whitespace(text)


def word_shingles(texts: pa.Array | pa.ChunkedArray, ngram: int, scheme: Scheme,
                  *, map_digits: bool = False, as_sets: bool = True) -> ShingleSets:
    """Word n-gram shingle sets of each document.

    Words are the space-separated tokens of :func:`normalize_for_near_dup`'s output; a
    shingle is a window of ``ngram`` consecutive words. A document with at least one but
    fewer than ``ngram`` words yields one shingle made of all its words; an empty (or null,
    or punctuation-only) document yields none.

    Args:
        texts: raw document texts.
        ngram: words per shingle (FineWeb: 5).
        scheme: ``"fast"`` (xxHash64 per distinct word, vectorized window combine) or
            ``"datasketch"`` (``sha1_hash32`` of the space-joined words, bit-compatible with
            ``datasketch.MinHash``).
        map_digits: passed to :func:`normalize_for_near_dup`.
        as_sets: de-duplicate and sort each document's shingles. MinHash signatures do not
            need it (a minimum over repeats is the same), and skipping it saves about a fifth
            of the time; exact Jaccard does.

    Returns:
        The per-document shingle hashes: sorted and unique with ``as_sets``, else in
        document order with repeats.
    """
    _check_arguments(ngram, scheme)
    normalized = _normalized_non_empty(texts, map_digits)
    words = pc.split_pattern(normalized, pattern=" ")  # empty docs are null: no tokens
    counts = pc.list_value_length(words).fill_null(0).to_numpy().astype(np.int64)
    flat = pc.list_flatten(words)
    windows = _window_counts(counts, ngram)
    if scheme == "fast":
        encoded = flat.dictionary_encode()
        # One C call per distinct word of the batch, not per occurrence.
        utf8_words = encoded.dictionary.cast(pa.large_binary()).to_pylist()  # zero-copy cast
        unique_hashes = np.fromiter((xxhash.xxh64_intdigest(w) for w in utf8_words),
                                    dtype=np.uint64, count=len(utf8_words))
        token_hashes = unique_hashes[encoded.indices.to_numpy()]
        values = _combine_windows(token_hashes, counts, ngram)
    else:  # "datasketch", checked above
        values = _sha1_shingles(
            (" ".join(doc[i:i + ngram]) for doc in words.to_pylist() if doc
             for i in range(max(len(doc) - ngram + 1, 1))), int(windows.sum()))
    if not as_sets:
        offsets = np.zeros(len(windows) + 1, dtype=np.int64)
        np.cumsum(windows, out=offsets[1:])
        return ShingleSets(values=values, offsets=offsets)
    return _as_sets(values, windows)


def char_shingles(texts: pa.Array | pa.ChunkedArray, ngram: int, scheme: Scheme,
                  *, map_digits: bool = False) -> ShingleSets:
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

    Returns:
        The de-duplicated, per-document sorted shingle hashes.
    """
    _check_arguments(ngram, scheme)
    normalized = _normalized_non_empty(texts, map_digits)
    counts = pc.utf8_length(normalized).fill_null(0).to_numpy().astype(np.int64)
    windows = _window_counts(counts, ngram)
    strings = normalized.fill_null("").to_pylist()
    if scheme == "fast":
        # One UTF-32 decode of the whole batch; documents are recovered from ``counts``.
        code_points = np.frombuffer("".join(strings).encode("utf-32-le"), dtype="<u4")
        token_hashes = splitmix64(code_points.astype(np.uint64) ^ _CODE_POINT_SALT)
        values = _combine_windows(token_hashes, counts, ngram)
    else:  # "datasketch", checked above
        values = _sha1_shingles(
            (s[i:i + ngram] for s in strings if s
             for i in range(max(len(s) - ngram + 1, 1))), int(windows.sum()))
    return _as_sets(values, windows)


def _check_arguments(ngram: int, scheme: str) -> None:
    if not isinstance(ngram, (int, np.integer)) or ngram < 1:
        raise ValueError(f"ngram must be a positive integer, got {ngram!r}")
    if scheme not in ("fast", "datasketch"):
        raise ValueError(f"scheme must be 'fast' or 'datasketch', got {scheme!r}")


def _normalized_non_empty(texts: pa.Array | pa.ChunkedArray, map_digits: bool) -> pa.Array:
    """Normalized texts with empty results turned into nulls (so they have no tokens)."""
    normalized = normalize_for_near_dup(texts, map_digits=map_digits)
    if not pa.types.is_large_string(normalized.type):
        # A batch's words may exceed the 2 GiB that 32-bit string offsets address.
        normalized = normalized.cast(pa.large_string())
    empty = pc.equal(pc.utf8_length(normalized), 0)
    return pc.if_else(empty, pa.scalar(None, normalized.type), normalized)


def _window_counts(token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Shingles per document before de-duplication: ``k - n + 1``, 1 if ``0 < k < n``, else 0."""
    return np.where(token_counts >= ngram, token_counts - ngram + 1,
                    np.minimum(token_counts, 1)).astype(np.int64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """One splitmix64 step on ``uint64`` values: a bijective 64-bit avalanche mix.

    Steele, Lea and Flood 2014, "Fast splittable pseudorandom number generators" (OOPSLA).
    Arithmetic wraps modulo ``2**64``, as intended.
    """
    x = x + _GOLDEN
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _combine_windows(token_hashes: np.ndarray, token_counts: np.ndarray, ngram: int) -> np.ndarray:
    """Hash every window of ``ngram`` consecutive tokens of every document.

    ``token_hashes`` holds the tokens of all documents back to back; document ``d`` has
    ``token_counts[d]`` of them. The combine is order-sensitive (rotate, xor, multiply by an
    odd constant per token) and ends with the window length and a splitmix64 avalanche. The
    Python loop runs over the ``ngram`` positions, each step vectorized over all windows.
    """
    windows = _window_counts(token_counts, ngram)
    total = int(windows.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint64)
    token_starts = np.cumsum(token_counts) - token_counts
    window_starts = np.cumsum(windows) - windows
    first = np.arange(total, dtype=np.int64) + np.repeat(token_starts - window_starts, windows)
    lengths = np.repeat(np.minimum(token_counts, ngram), windows)
    # Only windows of documents shorter than ngram stop early; their extra reads are clipped
    # to a valid index and their state is left unchanged past their length.
    any_short = bool((lengths < ngram).any())
    last_token = len(token_hashes) - 1
    h = np.full(total, _WINDOW_SEED, dtype=np.uint64)
    rotated = np.empty_like(h)
    for t in range(ngram):
        index = first + t
        if any_short:
            np.minimum(index, last_token, out=index)
            previous = h.copy()
        np.left_shift(h, _U64(17), out=rotated)  # h = rotl(h, 17) ^ w, in place
        np.right_shift(h, _U64(47), out=h)
        np.bitwise_or(h, rotated, out=h)
        np.bitwise_xor(h, token_hashes[index], out=h)
        np.multiply(h, _COMBINE_MULTIPLIER, out=h)
        if any_short:
            np.copyto(h, previous, where=t >= lengths)
    return splitmix64(h ^ lengths.astype(np.uint64))


def _sha1_shingles(shingles, count: int) -> np.ndarray:
    """datasketch's ``sha1_hash32`` of each shingle string (a Python loop: compatibility only)."""
    # Imported here: importing datasketch pulls in scipy, which the fast path never needs.
    from datasketch.hashfunc import sha1_hash32

    return np.fromiter((sha1_hash32(s.encode("utf-8")) for s in shingles),
                       dtype=np.uint64, count=count)


def _as_sets(values: np.ndarray, windows: np.ndarray) -> ShingleSets:
    """Sort each document's shingle hashes and drop repeats, vectorized over the batch.

    Equivalent to ``np.lexsort((values, doc))`` then masking repeats, but about four times
    faster: each value is replaced by its rank in one global argsort, so that
    ``doc * n + rank`` is a single ``int64`` key whose plain sort orders by document, then
    value. Equal values of a document get consecutive ranks, so they end up adjacent.
    """
    n, num_docs = len(values), len(windows)
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
