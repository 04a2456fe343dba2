"""Compiled kernels (numba) for near-duplicate normalization.

One pass per document over its UTF-8 bytes does what the former vectorized numpy code
did in about twenty whole-batch passes: decode each code point, lowercase it through a
table, look its class up (separator, trimmed, decimal digit), and write the words joined
by single spaces (:func:`fold_words`); the stretches NFKC may change are found first
(:func:`unsafe_segments`) and spliced back normalized (:func:`splice`). The hashes
(:mod:`operators.dedup.hash_kernel`) then read the words where they lie in that buffer.
The result is the regex pipeline's exactly (the tests compare the two).

Why numba: the numpy passes were most of the signature stage; one loop per byte compiled
by LLVM costs a small fraction of them (docs/benchmarks.md).
The functions are compiled once per process and cached on disk (``cache=True``); they
release the GIL. Pure functions: no I/O, no state.
"""

from __future__ import annotations

import numba
import numpy as np

from operators.dedup.code_points import DIGIT, SEPARATOR, TRIMMED

compiled = numba.njit(cache=True, nogil=True, boundscheck=False)
"""How every kernel is compiled: cached on disk, without the GIL or bounds checks."""
_jit = compiled


@_jit
def _decode(data: np.ndarray, i: int, end: int) -> tuple[int, int]:
    """Code point at ``data[i]`` and its byte length; never reads at or past ``end``.

    A stray continuation byte or a sequence cut by ``end`` (invalid UTF-8, which Arrow
    strings should not hold) is one byte of code point ``-1``: a word byte, copied as is.
    """
    b = np.int64(data[i])
    if b < 0x80:
        return b, 1
    if b < 0xC0:
        return -1, 1
    n = 2 if b < 0xE0 else (3 if b < 0xF0 else 4)
    if i + n > end:
        return -1, 1
    cp = b & (0x1F if n == 2 else (0x0F if n == 3 else 0x07))
    for k in range(1, n):
        cp = (cp << 6) | (np.int64(data[i + k]) & 0x3F)
    return min(cp, 0x10FFFF), n


@_jit
def _encode(out: np.ndarray, o: int, cp: int) -> int:
    """Write ``cp`` as UTF-8 at ``out[o]``; returns the offset after it."""
    if cp < 0x80:
        out[o] = cp
        return o + 1
    if cp < 0x800:
        out[o] = 0xC0 | (cp >> 6)
        out[o + 1] = 0x80 | (cp & 0x3F)
        return o + 2
    if cp < 0x10000:
        out[o] = 0xE0 | (cp >> 12)
        out[o + 1] = 0x80 | ((cp >> 6) & 0x3F)
        out[o + 2] = 0x80 | (cp & 0x3F)
        return o + 3
    out[o] = 0xF0 | (cp >> 18)
    out[o + 1] = 0x80 | ((cp >> 12) & 0x3F)
    out[o + 2] = 0x80 | ((cp >> 6) & 0x3F)
    out[o + 3] = 0x80 | (cp & 0x3F)
    return o + 4


@_jit
def unsafe_segments(data: np.ndarray, offsets: np.ndarray, classes: np.ndarray, unsafe: int,
                    segments: np.ndarray) -> int:
    """The byte ranges of a batch that NFKC may change, written as ``(start, end)`` rows of
    ``segments``; returns how many there are (only the first ``len(segments)`` are
    written: call again with a larger array if there are more). A growing array would
    be reassigned in the loop, which makes numba count references on every iteration.

    A range is a maximal run of code points whose class has ``unsafe`` bits, with the code
    point just before it in its row. Every other code point is a boundary of NFKC (UAX
    #15: ``NFKC_QC=Yes`` and canonical combining class 0, and never the second of a
    composition), so normalizing the ranges alone normalizes the text. Ranges never
    cross rows. ASCII bytes are skipped without decoding.
    """
    count = 0
    for r in range(len(offsets) - 1):
        i, begin, end = offsets[r], offsets[r], offsets[r + 1]
        while i < end:
            if data[i] < 0x80:
                i += 1
                continue
            cp, size = _decode(data, i, end)
            if cp < 0 or not classes[cp] & unsafe:
                i += size
                continue
            start = i - 1 if i > begin else begin  # back to the lead byte of the code point before
            while start > begin and 0x80 <= data[start] < 0xC0:
                start -= 1
            i += size
            while i < end:
                cp, size = _decode(data, i, end)
                if cp < 0 or not classes[cp] & unsafe:
                    break
                i += size
            if count < len(segments):
                segments[count, 0] = start
                segments[count, 1] = i
            count += 1
    return count


@_jit
def splice(data: np.ndarray, offsets: np.ndarray, segments: np.ndarray, new_data: np.ndarray,
           new_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data`` with each ``segments`` range replaced by the matching row of
    ``new_data``/``new_offsets``; returns the new bytes and row offsets."""
    size = len(data) + (new_offsets[-1] - new_offsets[0]) - np.sum(segments[:, 1] - segments[:, 0])
    out = np.empty(size, dtype=np.uint8)
    out_offsets = np.empty(len(offsets), dtype=np.int64)
    out_offsets[0] = 0
    i, o, r = 0, 0, 0
    for k in range(len(segments) + 1):
        stop = segments[k, 0] if k < len(segments) else len(data)
        while r + 1 < len(offsets) and offsets[r + 1] <= stop:  # rows ending before the next segment
            out_offsets[r + 1] = o + (offsets[r + 1] - i)
            r += 1
        out[o:o + stop - i] = data[i:stop]
        o += stop - i
        if k < len(segments):
            n = new_offsets[k + 1] - new_offsets[k]
            out[o:o + n] = new_data[new_offsets[k]:new_offsets[k + 1]]
            o += n
            i = segments[k, 1]
    return out, out_offsets


_SEPARATOR_BIT = 0x100
_SPECIAL_BIT = 0x200


def byte_table(lower: np.ndarray, classes: np.ndarray, map_digits: bool) -> np.ndarray:
    """Per byte value (``int16``): the ASCII byte it becomes, ``0x100`` for a separator,
    ``0x200`` for a byte :func:`fold_words` must treat code point by code point (non-ASCII
    leads and continuations, trimmed controls)."""
    table = np.full(256, _SPECIAL_BIT, dtype=np.int16)
    for b in range(0x80):
        c = int(classes[int(lower[b])])
        if c & SEPARATOR:
            table[b] = _SEPARATOR_BIT
        elif not c & TRIMMED:
            table[b] = ord("0") if map_digits and c & DIGIT else int(lower[b])
    return table


@_jit
def fold_words(data: np.ndarray, offsets: np.ndarray, lower: np.ndarray, classes: np.ndarray,
               table: np.ndarray, map_digits: bool, out: np.ndarray, out_offsets: np.ndarray,
               counts: np.ndarray) -> int:
    """Lowercase each row and write its words joined by single spaces.

    A word is a maximal run of code points whose class (after lowercasing) is not
    ``SEPARATOR``; ``TRIMMED`` code points before a row's first other word code point or
    after its last one are dropped, as ``utf8_trim_whitespace`` does after the separators
    became spaces. With ``map_digits``, decimal digits become ``"0"``. Unchanged code
    points are copied byte for byte. Plain ASCII bytes go through :func:`byte_table`
    without a branch on their kind (a separator every 6 bytes of web text makes such
    branches mispredict); the rest, one code point at a time.

    Args:
        data, offsets: the UTF-8 rows (NFKC already applied where needed).
        lower: lowercase code point of every code point (``utf8_lower``'s mapping).
        classes: class bits of every code point (:func:`~operators.dedup.code_points.code_point_classes`).
        table: :func:`byte_table` for the same ``lower``, ``classes`` and ``map_digits``.
        map_digits: map decimal digits to ``"0"``.
        out: output buffer, filled from 0; its last 8 bytes are left for padding.
        out_offsets: row offsets in ``out`` (``len(offsets)``), written.
        counts: words per row (``len(offsets) - 1``), written.

    Returns:
        Bytes written, or -1 if ``out`` was too small (lowercasing lengthened some code
        points: call again with a larger buffer).
    """
    o = 0
    capacity = len(out) - 8
    out_offsets[0] = 0
    for r in range(len(offsets) - 1):
        i, end = offsets[r], offsets[r + 1]
        if o + (end - i) * 3 // 2 + 1 > capacity:  # lowercasing lengthens some 2-byte code points
            return -1
        row_start = o
        kept_end, kept_words, words, in_word = o, 0, 0, 0
        while i < end:
            e = table[data[i]]
            if not e & _SPECIAL_BIT:
                word = 1 - (e >> 8)  # 1 for a word byte, 0 for a separator
                start = word & (1 - in_word)
                out[o] = 32  # a space, kept only before a word that is not the row's first
                o += start & (words > 0)
                words += start
                out[o] = e & 0xFF
                o += word
                kept_end += (o - kept_end) * word
                kept_words += (words - kept_words) * word
                in_word = word
                i += 1
                continue
            cp, size = _decode(data, i, end)
            c, cp_low = 0, cp
            if cp >= 0:
                cp_low = np.int64(lower[cp])
                c = classes[cp_low]
                if c & SEPARATOR:
                    in_word = 0
                    i += size
                    continue
                if c & TRIMMED and kept_words == 0:  # leading: trimmed
                    i += size
                    continue
                if map_digits and c & DIGIT:
                    cp_low = 48  # "0"
            if not in_word:
                if words:
                    out[o] = 32  # " "
                    o += 1
                words += 1
                in_word = 1
            if cp < 0 or cp_low == cp:
                for k in range(size):
                    out[o + k] = data[i + k]
                o += size
            else:
                o = _encode(out, o, cp_low)
            if not c & TRIMMED:
                kept_end, kept_words = o, words
            i += size
        o = kept_end  # drop trailing trimmed code points and the words they made
        if kept_words == 0:
            o = row_start
        counts[r] = kept_words
        out_offsets[r + 1] = o
    return o


@_jit
def word_spans(data: np.ndarray, offsets: np.ndarray, counts: np.ndarray,
               starts: np.ndarray, lengths: np.ndarray) -> None:
    """Start and length of every space-separated word of :func:`fold_words`' output.

    Branch-free over the bytes: every byte stores the offset after it as the next word's
    start, and only a space advances the word index. ``starts`` needs one slot more than
    there are words (the last row's bytes after its last space write there).
    """
    w = 0
    for r in range(len(offsets) - 1):
        if counts[r] == 0:
            continue
        begin, end = offsets[r], offsets[r + 1]
        first = w
        starts[w] = begin
        w += 1
        for i in range(begin, end - 1):  # a row never ends with a space
            starts[w] = i + 1
            w += data[i] == 32
        for k in range(first, w - 1):
            lengths[k] = starts[k + 1] - 1 - starts[k]
        lengths[w - 1] = end - starts[w - 1]
