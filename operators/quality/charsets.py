"""Character sets shared by the quality rule families, as Python sets and RE2 classes.

Python's ``str`` methods define whitespace (``str.isspace``) and line breaks
(``str.splitlines``); datatrove's filters use those methods, so the vectorized code here
uses the same sets, written out for RE2 (pyarrow's regex engine).
"""

from __future__ import annotations

WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000"
)
"""Every character for which ``str.isspace()`` is true: what ``str.split()`` and
``str.strip()`` remove."""

LINE_BREAK_PATTERN = r"\r\n|[\n\x0b\x0c\r\x1c-\x1e\x{85}\x{2028}\x{2029}]"
"""RE2 pattern of the line boundaries of ``str.splitlines()`` (``\\r\\n`` counts once)."""

_TERMINAL_RANGES = (
    0x21, 0x2E, 0x3F, 0x589, (0x61D, 0x61F), 0x6D4, (0x700, 0x702), 0x7F9, 0x837, 0x839,
    (0x83D, 0x83E), (0x964, 0x965), (0x104A, 0x104B), 0x1362, (0x1367, 0x1368), 0x166E,
    (0x1735, 0x1736), (0x17D4, 0x17D6), (0x17D9, 0x17DA), 0x1803, 0x1809, (0x1944, 0x1945),
    (0x1AA8, 0x1AAB), (0x1B5A, 0x1B5B), (0x1B5E, 0x1B5F), (0x1B7D, 0x1B7E), (0x1C3B, 0x1C3C),
    (0x1C7E, 0x1C7F), (0x203C, 0x203D), (0x2047, 0x2049), 0x2E2E, 0x2E3C, (0x2E53, 0x2E54),
    0x3002, 0xA4FF, (0xA60E, 0xA60F), 0xA6F3, 0xA6F7, (0xA876, 0xA877), (0xA8CE, 0xA8CF),
    0xA92F, (0xA9C8, 0xA9C9), (0xAA5D, 0xAA5F), (0xAAF0, 0xAAF1), 0xABEB, 0xFE52,
    (0xFE56, 0xFE57), 0xFF01, 0xFF0E, 0xFF1F, 0xFF61, (0x10A56, 0x10A57), (0x10F55, 0x10F59),
    (0x10F86, 0x10F89), (0x11047, 0x11048), (0x110BE, 0x110C1), (0x11141, 0x11143),
    (0x111C5, 0x111C6), 0x111CD, (0x111DE, 0x111DF), (0x11238, 0x11239), (0x1123B, 0x1123C),
    0x112A9, (0x1144B, 0x1144C), (0x115C2, 0x115C3), (0x115C9, 0x115D7), (0x11641, 0x11642),
    (0x1173C, 0x1173E), 0x11944, 0x11946, (0x11A42, 0x11A43), (0x11A9B, 0x11A9C),
    (0x11C41, 0x11C42), (0x11EF7, 0x11EF8), (0x11F43, 0x11F44), (0x16A6E, 0x16A6F), 0x16AF5,
    (0x16B37, 0x16B38), 0x16B44, 0x16E98, 0x1BC9F, 0x1DA88,
)


def _expand(ranges: tuple[int | tuple[int, int], ...]) -> frozenset[str]:
    chars: set[str] = set()
    for item in ranges:
        low, high = item if isinstance(item, tuple) else (item, item)
        chars.update(map(chr, range(low, high + 1)))
    return frozenset(chars)


TERMINAL_PUNCTUATION = _expand(_TERMINAL_RANGES)
"""Sentence-ending marks: Unicode's Sentence_Terminal property (``! . ?``, ``。``, ``।``,
``؟`` ...) as datatrove 0.10.1 lists it (159 characters). FineWeb's line-punctuation rule
and the sentence counting of C4 use it."""

SYMBOLS = frozenset(
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "\u2014\u201d\uff05\uff11\u3008\u3001\u2501\u3010\u300c\u300d\uff0c\u3011\uff1b\u201c\u300a"
    "\u201e\u2019\u2236\u00b4\uff0e\uff08\u2013\uff1f\uff01\uff1a\uff5e\u00ab\u3009\u300b\uff09"
    "\u3002\u2026\u25ba\u00bb"
) | _expand(((0x0, 0x8), 0xB, 0xC, (0xD, 0x1F), (0x7F, 0x9F))) | TERMINAL_PUNCTUATION
"""Characters that make a word a "symbol" for Gopher's word counts: ASCII punctuation, C0
and C1 control characters, 34 typographic marks and :data:`TERMINAL_PUNCTUATION` (the set
datatrove's GopherQualityFilter uses; see docs/operators.md for what it leaves out)."""


def re2_class(chars: frozenset[str] | str, negate: bool = False) -> str:
    """An RE2 character class matching any of ``chars`` (or, with ``negate``, any other)."""
    body = "".join(f"\\x{{{ord(char):x}}}" for char in sorted(chars))
    return f"[{'^' if negate else ''}{body}]"
