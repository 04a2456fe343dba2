"""Near-duplicate normalization of a whole batch, one compiled pass per document.

:func:`normalize_words` gives :func:`~operators.dedup.shingling.normalize_for_near_dup`'s
text as one buffer that holds each document's words joined by single spaces (and
:func:`token_spans` the words' byte spans in it). The short stretches of text that NFKC
may change (a code point of class ``NFKC_UNSAFE`` and the one before it, up to the next
NFKC boundary) go through Arrow's ``utf8_normalize`` and are spliced back; then the kernel
:func:`~operators.dedup.token_kernel.fold_words` decodes every code point, lowercases it
through :func:`~operators.dedup.code_points.lower_map`, and looks its class up in
:func:`~operators.dedup.code_points.code_point_classes`.

The result is the regex pipeline's exactly (NFKC, ``utf8_lower``, ``\\p{Nd}`` to ``"0"``,
``replace_substring_regex(SEPARATOR_RUN, " ")``, ``utf8_trim_whitespace``), Unicode
versions included: both tables are built by running those very functions over all code
points, and the tests compare the two on adversarial text. The kernel replaced about
twenty vectorized numpy passes (and ``ascii_lower``, ``utf8_lower`` and a regex on the
rows that needed them) and is faster (docs/benchmarks.md).
Pure functions.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.dedup import token_kernel
from operators.dedup.code_points import (
    DECIMAL_DIGIT,
    NFKC_UNSAFE,
    SEPARATOR_RUN,
    code_point_classes,
    lower_map,
)

__all__ = ["DECIMAL_DIGIT", "PADDING", "SEPARATOR_RUN", "NormalizedText", "TokenSpans", "nfkc", "normalize_words",
           "token_spans"]

PADDING = 8
"""Zero bytes after :attr:`TokenSpans.data`'s text, so that 8-byte loads at any word start stay inside."""


@dataclass(frozen=True, eq=False)
class NormalizedText:
    """The normalized text of a batch: each document's words joined by single spaces.

    Attributes:
        data: ``uint8``; the normalized UTF-8 of every row back to back, then
            :data:`PADDING` zero bytes.
        offsets: ``int64`` row offsets in ``data`` (``num_docs + 1``, from 0).
        counts: ``int64`` number of words of each document.
        valid: ``bool`` per document, False for a null text.
    """

    data: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray
    valid: np.ndarray

    def joined(self) -> pa.Array:
        """The normalized texts (null for a null text), as ``large_string`` sharing :attr:`data`."""
        n = len(self.counts)
        nulls = int(n - np.count_nonzero(self.valid))
        validity = pa.array(self.valid).buffers()[1] if nulls else None
        return pa.Array.from_buffers(pa.large_string(), n, [validity, pa.py_buffer(self.offsets),
                                                            pa.py_buffer(self.data)], null_count=nulls)

    def spans(self) -> TokenSpans:
        """The byte span of every word."""
        total = int(self.counts.sum())
        starts, lengths = np.empty(total + 1, dtype=np.int64), np.empty(total, dtype=np.int64)
        token_kernel.word_spans(self.data, self.offsets, self.counts, starts, lengths)
        return TokenSpans(data=self.data, offsets=self.offsets, starts=starts[:total], lengths=lengths,
                          counts=self.counts, valid=self.valid)


@dataclass(frozen=True, eq=False)
class TokenSpans(NormalizedText):
    """:class:`NormalizedText` with the byte span of every word.

    Attributes:
        starts: ``int64`` offset in ``data`` of every word, documents in order.
        lengths: ``int64`` byte length of every word (at least 1).
    """

    starts: np.ndarray
    lengths: np.ndarray


def nfkc(text: pa.Array) -> pa.Array:
    """NFKC, applied only to the rows that are not already in NFKC.

    ``unicodedata.is_normalized`` is a quick check in C, far cheaper than normalizing; most
    web text passes it (79% of the benchmark corpus).
    Pure-ASCII rows, always in NFKC, skip even the check.
    """
    candidates = pc.invert(pc.fill_null(pc.string_is_ascii(text), True))
    return _nfkc_rows(text, np.flatnonzero(candidates.to_numpy(zero_copy_only=False)))


def _nfkc_rows(text: pa.Array, rows: np.ndarray) -> pa.Array:
    """``text`` with NFKC applied to those of ``rows`` that fail Python's quick check."""
    if not rows.size:
        return text
    strings = text.take(pa.array(rows)).to_pylist()
    needs = np.zeros(len(text), dtype=bool)
    needs[rows] = [s is not None and not unicodedata.is_normalized("NFKC", s) for s in strings]
    if not needs.any():
        return text
    mask = pa.array(needs)
    return pc.replace_with_mask(text, mask, pc.utf8_normalize(text.filter(mask), form="NFKC"))


def token_spans(texts: pa.Array | pa.ChunkedArray, *, map_digits: bool) -> TokenSpans:
    """Byte spans of the words of every text (see the module docstring)."""
    return normalize_words(texts, map_digits=map_digits).spans()


def normalize_words(texts: pa.Array | pa.ChunkedArray, *, map_digits: bool) -> NormalizedText:
    """The normalized text of every row (see the module docstring)."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    valid = texts.is_valid().to_numpy(zero_copy_only=False) if texts.null_count else \
        np.ones(len(texts), dtype=bool)
    texts = texts.fill_null("") if texts.null_count else texts
    classes = code_point_classes()
    data, offsets = _utf8_view(texts)
    segments = _unsafe_segments(data, offsets, classes)
    if len(segments):
        normalized = _nfkc_segments(data, segments)
        new_data, new_offsets = _utf8_view(normalized)
        data, offsets = token_kernel.splice(data, offsets, segments, new_data, new_offsets)
    out_offsets = np.empty(len(offsets), dtype=np.int64)
    counts = np.empty(len(offsets) - 1, dtype=np.int64)
    capacity = len(data) + PADDING
    table = _byte_table(map_digits)
    while True:
        out = np.empty(capacity, dtype=np.uint8)
        size = token_kernel.fold_words(data, offsets, lower_map(), classes, table, map_digits, out, out_offsets,
                                       counts)
        if size >= 0:
            break
        capacity += len(data) // 2 + PADDING  # lowercasing lengthens a code point by 1 byte at most
    out[size:size + PADDING] = 0
    out = out[:size + PADDING]
    return NormalizedText(data=out, offsets=out_offsets, counts=counts, valid=valid)


def _unsafe_segments(data: np.ndarray, offsets: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """:func:`~operators.dedup.token_kernel.unsafe_segments` as a ``(count, 2)`` array."""
    segments = np.empty((len(data) // 256 + 64, 2), dtype=np.int64)
    count = token_kernel.unsafe_segments(data, offsets, classes, NFKC_UNSAFE, segments)
    if count > len(segments):
        segments = np.empty((count, 2), dtype=np.int64)
        token_kernel.unsafe_segments(data, offsets, classes, NFKC_UNSAFE, segments)
    return segments[:count]


def _nfkc_segments(data: np.ndarray, segments: np.ndarray) -> pa.Array:
    """Arrow's NFKC of each ``(start, end)`` byte range of ``data`` (see
    :func:`~operators.dedup.token_kernel.unsafe_segments`), as ``large_string``."""
    # Ranges and the gaps between them as consecutive rows of one array; the ranges are
    # every other row.
    bounds = pa.py_buffer(np.ascontiguousarray(segments.reshape(-1)))
    pieces = pa.Array.from_buffers(pa.large_string(), 2 * len(segments) - 1, [None, bounds, pa.py_buffer(data)])
    return pc.utf8_normalize(pieces.take(pa.array(np.arange(0, len(pieces), 2))), form="NFKC")


@functools.cache
def _byte_table(map_digits: bool) -> np.ndarray:
    """:func:`~operators.dedup.token_kernel.byte_table` of this process's tables (built once)."""
    return token_kernel.byte_table(lower_map(), code_point_classes(), map_digits)


def _utf8_view(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of ``text`` (a zero-copy view) and its ``int64`` row offsets from 0."""
    large = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[text.offset:text.offset + len(text) + 1].astype(np.int64)
    if not len(text) or text.buffers()[2] is None:
        return np.empty(0, dtype=np.uint8), offsets - offsets[0]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data, offsets - offsets[0]
