"""Near-duplicate normalization done on the UTF-8 bytes of a whole batch at once.

:func:`token_spans` gives the words of :func:`~operators.dedup.shingling.normalize_for_near_dup`
as (start, length) byte spans of one buffer, without building the normalized strings or a
list of words. :func:`fold` applies NFKC and lowercasing (Arrow's ``ascii_lower`` for the
rows that need nothing else); then one ``bytes.translate`` marks the ASCII separators, and
only the non-ASCII code points are decoded, to look their class up in
:func:`~operators.dedup.code_points.code_point_classes`. A word is a maximal run of bytes
that are not separators, within one row. This replaced ``replace_substring_regex`` with
:data:`SEPARATOR_RUN` and ``split_pattern``, which cost about 190 of 490 ms for 2,000
documents of 4.5 KB (RE2 pays per match, and web text has a separator every 6 bytes).

The result is the regex pipeline's exactly, Unicode versions included: the class table is
built by running the regex, ``utf8_lower`` and ``utf8_trim_whitespace`` themselves over
all code points (tests compare the two on adversarial text). Pure functions.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.dedup.code_points import (
    DECIMAL_DIGIT,
    LOWER_CHANGES,
    NFKC_UNSAFE,
    SEPARATOR,
    SEPARATOR_RUN,
    TRIMMED,
    code_point_classes,
    decode,
)

__all__ = ["DECIMAL_DIGIT", "PADDING", "SEPARATOR_RUN", "TokenSpans", "fold", "nfkc", "token_spans"]

PADDING = 8
"""Zero bytes after :attr:`TokenSpans.data`, so that 8-byte loads at any word start stay inside."""

_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_COMPLEX = NFKC_UNSAFE | LOWER_CHANGES


@dataclass(frozen=True, eq=False)
class TokenSpans:
    """The words of each document of a batch, as byte spans of one normalized buffer.

    Attributes:
        data: ``uint8`` NFKC, lowercased (and digit-mapped) UTF-8 of all rows back to back,
            followed by :data:`PADDING` zero bytes. Bytes between words are left as they are.
        starts: ``int64`` offset in ``data`` of every word, documents in order.
        lengths: ``int64`` byte length of every word (at least 1).
        counts: ``int64`` number of words of each document.
        valid: ``bool`` per document, False for a null text.
    """

    data: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    counts: np.ndarray
    valid: np.ndarray


def nfkc(text: pa.Array) -> pa.Array:
    """NFKC, applied only to the rows that are not already in NFKC.

    ``unicodedata.is_normalized`` is a quick check in C (about 5 us for 4.5 KB); most web
    text passes it (79% of the benchmark corpus), and normalizing costs about 12 times more.
    Pure-ASCII rows, always in NFKC, skip even the check.
    """
    candidates = pc.invert(pc.fill_null(pc.string_is_ascii(text), True))
    rows = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
    if not rows.size:
        return text
    strings = text.take(pa.array(rows)).to_pylist()
    needs = np.zeros(len(text), dtype=bool)
    needs[rows] = [not unicodedata.is_normalized("NFKC", s) for s in strings]
    if not needs.any():
        return text
    mask = pa.array(needs)
    return pc.replace_with_mask(text, mask, pc.utf8_normalize(text.filter(mask), form="NFKC"))


def fold(text: pa.Array, *, map_digits: bool) -> pa.Array:
    """``utf8_lower(nfkc(text))``, then (``map_digits``) non-ASCII decimal digits to ``"0"``.

    ASCII digits are mapped later, on the bytes (:func:`token_spans`). Nulls are not
    expected (:func:`token_spans` fills them first). See :func:`_fold_rows`.
    """
    data, offsets = _utf8_view(text)
    leads = np.flatnonzero(data >= 0xC0)
    code_points, _ = decode(data, leads)
    special = _special_rows(code_point_classes()[code_points], leads, offsets, map_digits)
    lowered, special_folded = _fold_rows(text, special, map_digits)
    return pc.replace_with_mask(lowered, pa.array(special), special_folded) if special.any() else lowered


def _special_rows(classes: np.ndarray, leads: np.ndarray, offsets: np.ndarray, map_digits: bool) -> np.ndarray:
    """Rows that need more than ``ascii_lower``: a non-ASCII code point (at ``leads``, of
    class bits ``classes``) that NFKC or lowercasing may change, or (``map_digits``) any."""
    if not map_digits:
        leads = leads[classes & _COMPLEX != 0]
    special = np.zeros(len(offsets) - 1, dtype=bool)
    special[np.searchsorted(offsets, leads, side="right") - 1] = True
    return special


def _fold_rows(text: pa.Array, special: np.ndarray, map_digits: bool) -> tuple[pa.Array, pa.Array]:
    """Arrow's ``ascii_lower`` of all rows, and the whole treatment of the ``special`` ones.

    ``ascii_lower`` is 8 times faster than ``utf8_lower`` and gives the same result on a
    row whose non-ASCII code points lowercase to themselves; such a row is also in NFKC
    when none of them is :data:`NFKC_UNSAFE` (Python's quick check says yes). Special rows
    take :func:`nfkc`, ``utf8_lower`` and (``map_digits``) the ``\\p{Nd}`` regex.

    Returns:
        All rows ASCII-lowercased, and the special rows alone, folded, in order.
    """
    lowered = pc.ascii_lower(text)
    if not special.any():
        return lowered, lowered[:0]
    rows = pc.utf8_lower(nfkc(text.filter(pa.array(special))))
    if map_digits:
        rows = pc.replace_substring_regex(rows, pattern=DECIMAL_DIGIT, replacement="0")
    return lowered, rows


def token_spans(texts: pa.Array | pa.ChunkedArray, *, map_digits: bool) -> TokenSpans:
    """Byte spans of the words of every text (see the module docstring).

    The non-ASCII code points are decoded once, from the input: they decide which rows
    :func:`_fold_rows` must treat specially, and, in the other rows, which bytes are
    separators (folding changes no non-ASCII byte there). Only the special rows' bytes are
    decoded again after folding.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    valid = texts.is_valid().to_numpy(zero_copy_only=False) if texts.null_count else \
        np.ones(len(texts), dtype=bool)
    texts = texts.fill_null("") if texts.null_count else texts
    raw, raw_offsets = _utf8_view(texts)
    leads = np.flatnonzero(raw >= 0xC0)
    code_points, lengths = decode(raw, leads)
    classes = code_point_classes()[code_points]
    special = _special_rows(classes, leads, raw_offsets, map_digits)
    lowered, special_folded = _fold_rows(texts, special, map_digits)
    data, offsets = _spaced_buffer(lowered, special_folded, special)
    if map_digits:
        data = np.frombuffer(data.tobytes().translate(_DIGITS_TO_ZERO), dtype=np.uint8).copy()
    # Non-ASCII separators: in plain rows where the input had them, in special rows where
    # their folded text has them; both moved to the rows' offsets in ``data``.
    starts, lengths, rows = _moved_separators(leads, classes, lengths, raw_offsets,
                                              np.arange(len(texts)), offsets)
    plain = ~special[rows]
    special_view, special_offsets = _utf8_view(special_folded)
    again = np.flatnonzero(special_view >= 0xC0)
    points_again, lengths_again = decode(special_view, again)
    starts_again, lengths_again, _ = _moved_separators(again, code_point_classes()[points_again], lengths_again,
                                                       special_offsets, np.flatnonzero(special), offsets)
    word = _word_bytes(data, offsets, np.concatenate([starts[plain], starts_again]),
                       np.concatenate([lengths[plain], lengths_again]))
    starts, lengths = _runs(word)
    counts = np.diff(np.searchsorted(starts, offsets)).astype(np.int64)
    return TokenSpans(data=data, starts=starts, lengths=lengths, counts=counts, valid=valid)


def _spaced_buffer(lowered: pa.Array, special_folded: pa.Array,
                   special: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The folded UTF-8 of every row with a space after each (no word runs from one row
    into the next), and :data:`PADDING`; with its row offsets.

    Rows come from ``lowered``, the special ones from ``special_folded``: one copy of
    each stretch of plain rows and of each special row (cheaper than ``replace_with_mask``).
    """
    spaced = [_join_space(lowered), _join_space(special_folded)]
    (plain, plain_offsets), (folded, folded_offsets) = map(_utf8_view, spaced)
    sizes = np.diff(plain_offsets)
    sizes[special] = np.diff(folded_offsets)
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    pieces, after = [], 0  # ``after``: the first row not copied yet
    for j, row in enumerate(np.flatnonzero(special).tolist()):
        pieces += [plain[plain_offsets[after]:plain_offsets[row]], folded[folded_offsets[j]:folded_offsets[j + 1]]]
        after = row + 1
    pieces += [plain[plain_offsets[after]:], np.zeros(PADDING, dtype=np.uint8)]
    return np.concatenate(pieces), offsets


def _join_space(text: pa.Array) -> pa.Array:
    """Every string followed by one space."""
    if pa.types.is_string(text.type) and text.nbytes + len(text) >= 2**31 - 1:
        text = text.cast(pa.large_string())  # the spaces would overflow 32-bit offsets
    return pc.binary_join_element_wise(text, pa.scalar(" ", text.type), pa.scalar("", text.type))


def _moved_separators(leads: np.ndarray, classes: np.ndarray, lengths: np.ndarray, offsets: np.ndarray,
                      batch_rows: np.ndarray, new_offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """The non-ASCII separators among decoded ``leads`` (class bits ``classes``), moved to
    another buffer.

    ``leads`` are offsets in a buffer whose row ``j`` (``offsets``) is row ``batch_rows[j]``
    of the batch; the same row starts at ``new_offsets[batch_rows[j]]`` in the other buffer,
    with its bytes unchanged. Returns each separator's offset there, byte length and row.
    """
    found = classes & SEPARATOR != 0
    leads, lengths = leads[found], lengths[found]
    row = np.searchsorted(offsets, leads, side="right") - 1
    batch_row = batch_rows[row]
    return leads - offsets[row] + new_offsets[batch_row], lengths, batch_row


def _utf8_view(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of ``text`` (a zero-copy view) and its ``int64`` row offsets from 0."""
    large = pa.types.is_large_string(text.type)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[text.offset:text.offset + len(text) + 1].astype(np.int64)
    if not len(text) or text.buffers()[2] is None:
        return np.empty(0, dtype=np.uint8), offsets - offsets[0]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return data, offsets - offsets[0]


def _word_bytes(data: np.ndarray, offsets: np.ndarray, separators: np.ndarray,
                separator_lengths: np.ndarray) -> np.ndarray:
    """Per byte of ``data`` (padding included): does it belong to a word?

    ``separators`` and ``separator_lengths`` are the non-ASCII separator sequences.
    """
    raw = bytearray(data)
    # One table lookup per byte in C: ASCII separators -> 0, anything else -> 1 (a numpy
    # fancy-index lookup is 4 times slower, a chain of range comparisons 2 times).
    word = np.frombuffer(raw.translate(_ascii_table(SEPARATOR)), dtype=bool)  # writable
    word[len(data) - PADDING:] = False
    _set_ranges(word, separators, separator_lengths, value=False)
    classes = code_point_classes()
    if any(bytes([b]) in raw for b in np.flatnonzero(classes[:0x80] & TRIMMED)):  # memchr: fast
        _trim_rows(word, data, offsets, classes)
    return word


@functools.cache
def _ascii_table(flag: int) -> bytes:
    """``bytes.translate`` table: 0 for ASCII code points with ``flag``, 1 for other bytes."""
    return bytes(0 if b < 0x80 and code_point_classes()[b] & flag else 1 for b in range(256))


def _trim_rows(word: np.ndarray, data: np.ndarray, offsets: np.ndarray, classes: np.ndarray) -> None:
    """Drop the leading and trailing U+001C..U+001F of each row, as ``utf8_trim_whitespace``.

    Such code points are words inside a text but not at its ends. They are rare, so this
    loops over the few rows that hold one.
    """
    trimmed = ~np.frombuffer(data.tobytes().translate(_ascii_table(TRIMMED)), dtype=bool)
    for row in np.unique(np.searchsorted(offsets, np.flatnonzero(trimmed), side="right") - 1):
        lo, hi = offsets[row], offsets[row + 1]
        content = np.flatnonzero(word[lo:hi] & ~trimmed[lo:hi])
        word[lo:hi if not content.size else lo + content[0]] = False
        if content.size:
            word[lo + content[-1] + 1:hi] = False


def _runs(word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of every maximal run of True."""
    change = np.empty(len(word), dtype=bool)
    change[0] = word[0]
    np.not_equal(word[1:], word[:-1], out=change[1:])
    steps = np.flatnonzero(change)  # starts and stops alternate; the padding ends on False
    starts = steps[0::2].copy()
    return starts, steps[1::2] - starts


def _set_ranges(out: np.ndarray, starts: np.ndarray, lengths: np.ndarray, value: bool) -> None:
    """``out[s:s + n] = value`` for every span of at most 4 bytes (UTF-8 sequences)."""
    for k in range(int(lengths.max()) if lengths.size else 0):
        out[starts[lengths > k] + k] = value
