"""What near-duplicate normalization does to each Unicode code point, as one lookup table.

:func:`code_point_classes` says, for every code point, whether the former regex pipeline
(``replace_substring_regex`` with :data:`SEPARATOR_RUN`, Arrow's ``utf8_lower`` and
``utf8_trim_whitespace``, and the NFKC gate on Python's ``unicodedata.is_normalized``)
treats it specially. The table is computed by running those
very functions over all code points, so the byte-level normalization that reads it
(:mod:`operators.dedup.tokens`) gives the same result, Unicode versions included.
:func:`decode` turns the lead bytes of a UTF-8 buffer into code points, vectorized.

The lowercase mapping :func:`lower_map` (4.4 MB) is built the same way, by running
``utf8_lower``. Pure functions; the tables are built once per machine, in well under a
second, and kept in a cache file (:func:`cache_path`) that later processes load.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

# Whitespace as in exact.normalize_text (RE2's \s is ASCII-only, so \p{Z} adds Unicode
# spaces and separators: U+00A0, U+2028, U+3000, ...), plus punctuation and symbols.
SEPARATOR_RUN = r"[\s\x{0b}\x{85}\p{Z}\p{P}\p{S}]+"
DECIMAL_DIGIT = r"\p{Nd}"

SEPARATOR = 1
"""Matched by :data:`SEPARATOR_RUN`: becomes (part of) one space."""
TRIMMED = 4
"""Stripped at the ends of a text by ``utf8_trim_whitespace`` although not a separator:
U+001C..U+001F, the information separators."""
NFKC_UNSAFE = 8
"""May make a text fail ``unicodedata.is_normalized("NFKC", ...)``: not in NFKC by itself, a
combining mark (canonical reordering), or the second half of a canonical composition. A
text without such code points is in NFKC."""
LOWER_CHANGES = 16
"""Changed by Arrow's ``utf8_lower`` (a per-code-point mapping)."""
DIGIT = 32
"""Matched by :data:`DECIMAL_DIGIT`: becomes ``"0"`` when digits are mapped."""

MAX_CODE_POINT = 0x10FFFF
_PAYLOAD_MASKS = np.array([0, 0, 0x1F3F0000, 0x0F3F3F00, 0x073F3F3F], dtype=np.uint32)  # by length
_HANGUL_VOWELS_AND_TRAILS = (range(0x1161, 0x1176), range(0x11A8, 0x11C3))  # compose algorithmically


def decode(data: np.ndarray, leads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code point (``uint32``) and byte length (``uint32``) of the UTF-8 sequence at each lead.

    ``leads`` are the offsets in ``data``, ascending, of bytes ``>= 0xC0``. The 4 bytes at
    each lead are read at once (big-endian), the bytes past the sequence masked off and the
    6-bit payloads packed together by shifts, faster than byte by byte. Invalid
    sequences decode to some code point at most :data:`MAX_CODE_POINT`, never out of range.
    """
    words = np.zeros(len(leads), dtype=np.uint32)
    inside = int(np.searchsorted(leads, len(data) - 3))  # leads with 4 bytes left
    if inside:
        view = np.ndarray((len(data) - 3,), dtype=">u4", buffer=data, strides=(1,))
        words[:inside] = view[leads[:inside]]
    for i in range(inside, len(leads)):  # at most 3, at the very end: zero-padded
        tail = data[leads[i]:].tobytes().ljust(4, b"\0")
        words[i] = int.from_bytes(tail, "big")
    first = words >> np.uint32(24)
    lengths = np.uint32(2) + (first >= 0xE0) + (first >= 0xF0).astype(np.uint32)
    x = words & _PAYLOAD_MASKS.take(lengths)
    # Pack b0 b1 | b2 b3 into two 12-bit halves, then the halves into 24 bits.
    y = (x & np.uint32(0x003F003F)) | ((x >> np.uint32(2)) & np.uint32(0x07C00FC0))
    packed = ((y >> np.uint32(4)) & np.uint32(0x007FF000)) | (y & np.uint32(0x00000FFF))
    code_points = packed >> (np.uint32(6) * (np.uint32(4) - lengths))
    return np.minimum(code_points, np.uint32(MAX_CODE_POINT)), lengths


@functools.cache
def _every_code_point() -> tuple[np.ndarray, str, pa.Array]:
    """Every code point but the surrogates: as numbers, as one string, and one per row."""
    points = np.arange(MAX_CODE_POINT + 1, dtype=np.uint32)
    points = points[(points < 0xD800) | (points > 0xDFFF)]  # surrogates are not UTF-8
    text = points.astype("<u4").tobytes().decode("utf-32-le")  # every code point, in order
    lengths = 1 + (points >= 0x80).astype(np.int64) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.zeros(len(points) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    strings = pa.Array.from_buffers(pa.large_string(), len(points),
                                    [None, pa.py_buffer(offsets), pa.py_buffer(text.encode("utf-8"))])
    return points, text, strings


CACHE_DIR = Path(__file__).parent / "__pycache__"
"""Where the tables are kept between processes, beside numba's cache of the kernels.
Building them is a real cost for every new worker process before its first near-dup batch;
loading them is cheap (docs/benchmarks.md)."""


def cache_path() -> Path:
    """The cache file of this process's tables: named by everything they are built from
    (this module's source, pyarrow's version, Python's Unicode database)."""
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(f"{source} {pa.__version__} {unicodedata.unidata_version}".encode()).hexdigest()[:16]
    return CACHE_DIR / f"code-points-{key}.npz"


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """(lower map, classes): loaded from :func:`cache_path`, else built and saved there (an
    unwritable or damaged cache only costs the build)."""
    path = cache_path()
    try:
        with np.load(path) as saved:
            lower, classes = saved["lower"], saved["classes"]
        if lower.shape == classes.shape == (MAX_CODE_POINT + 1,) and lower.dtype == np.uint32 \
                and classes.dtype == np.uint8:
            return lower, classes
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass
    lower, classes = _build_lower_map(), _build_classes()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        with open(partial, "wb") as f:
            np.savez(f, lower=lower, classes=classes)
        os.replace(partial, path)  # readers never see a half-written file
    except OSError as err:
        log.debug("code-point tables not cached at %s: %s", path, err)
    return lower, classes


def lower_map() -> np.ndarray:
    """Arrow's ``utf8_lower`` of every code point (``uint32``, indexed by code point); see
    :func:`_build_lower_map`."""
    return _tables()[0]


def code_point_classes() -> np.ndarray:
    """Class bits of every code point (``uint8``, indexed by code point); see
    :func:`_build_classes`."""
    return _tables()[1]


def _build_lower_map() -> np.ndarray:
    """Arrow's ``utf8_lower`` of every code point (``uint32``, indexed by code point).

    ``utf8_lower`` maps each code point to exactly one, whatever its neighbours (checked
    here, and by the tests on whole texts), so lowercasing a text is this lookup per code
    point. Surrogates map to themselves.
    """
    points, _, strings = _every_code_point()
    lowered = pc.utf8_lower(strings)
    if not pc.all(pc.equal(pc.utf8_length(lowered), 1)).as_py():
        raise RuntimeError("utf8_lower maps some code point to several: the lowercase table cannot hold it")
    table = np.arange(MAX_CODE_POINT + 1, dtype=np.uint32)
    # One code point per row: the data buffer, read whole, decodes to one per point.
    offsets = np.frombuffer(lowered.buffers()[1], dtype=np.int64)[lowered.offset:lowered.offset + len(lowered) + 1]
    utf8 = lowered.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]
    table[points] = np.frombuffer(utf8.decode("utf-8").encode("utf-32-le"), dtype="<u4")
    return table


def _build_classes() -> np.ndarray:
    """Class bits of every code point (``uint8``, indexed by code point)."""
    points, text, strings = _every_code_point()
    classes = np.zeros(MAX_CODE_POINT + 1, dtype=np.uint8)
    separator = _flags(pc.match_substring_regex(strings, SEPARATOR_RUN))
    trimmed = _flags(pc.equal(pc.binary_length(pc.utf8_trim_whitespace(strings)), 0))
    classes[points[separator]] |= SEPARATOR
    classes[points[trimmed & ~separator]] |= TRIMMED
    classes[points[_flags(pc.not_equal(pc.utf8_lower(strings), strings))]] |= LOWER_CHANGES
    classes[points[_flags(pc.match_substring_regex(strings, DECIMAL_DIGIT))]] |= DIGIT
    classes[_nfkc_unsafe(text, points)] |= NFKC_UNSAFE
    return classes


def _flags(mask: pa.Array) -> np.ndarray:
    """A boolean Arrow array without nulls as numpy ``bool`` (via ``uint8``: no pandas)."""
    return mask.cast(pa.uint8()).to_numpy().astype(bool)


def _nfkc_unsafe(text: str, points: np.ndarray) -> np.ndarray:
    """Code points of :data:`NFKC_UNSAFE` (``text`` holds ``points``), from Python's own data.

    Python's NFKC quick check answers "yes" for a text whose code points all have
    combining class 0 and quick-check value Yes; it answers "no" or "maybe" (then
    normalizes to compare) only through the code points listed here. Quick-check No
    implies a decomposition mapping, so ``is_normalized`` runs only on those; Maybe is
    the second code point of a canonical pair (a superset: composition exclusions are
    included) and the Hangul vowels and trailing consonants.
    """
    combining = np.fromiter(map(unicodedata.combining, text), dtype=np.uint8, count=len(text))
    decompositions = list(map(unicodedata.decomposition, text))
    has = np.fromiter(map(bool, decompositions), dtype=bool, count=len(text))
    unsafe = [c for rng in _HANGUL_VOWELS_AND_TRAILS for c in rng]
    for i in np.flatnonzero(has).tolist():
        if not unicodedata.is_normalized("NFKC", text[i]):
            unsafe.append(int(points[i]))
        parts = decompositions[i].split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            unsafe.append(int(parts[1], 16))
    return np.union1d(points[combining != 0], np.array(unsafe, dtype=np.int64)).astype(np.int64)
