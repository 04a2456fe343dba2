"""Words as datatrove's quality filters count them, re-derived from spaCy's English rules.

datatrove's Gopher, FineWeb and C4 filters get their words from
``split_into_words(text, "eng")``: spaCy's rule-based English tokenizer
(``spacy.blank("en")``) with whitespace tokens dropped. Those rules are re-stated here,
without spaCy, so the published thresholds keep their meaning. The algorithm:

1. The text is cut on whitespace (``str.isspace``) into *chunks*; chunks are tokenized
   independently, so a batch tokenizes each distinct chunk once.
2. A chunk that is a *special case* (a contraction such as ``don't`` -> ``do n't``, an
   abbreviation such as ``e.g.``, an emoticon) becomes the listed tokens.
3. Otherwise *prefixes* (opening punctuation, quotes, currency signs, symbols, ``..+``) and
   *suffixes* (closing punctuation, quotes, ``'s``, a unit or currency after a digit, a
   period after a lower-case letter, digit, punctuation mark or two capitals) are peeled off
   one at a time from both ends, stopping early when the rest is a special case.
4. The rest is one token when it looks like a URL or a dotted name (``os.path``,
   ``www.example.com/a``); otherwise it is cut at *infixes*: ellipses, symbols (category
   So), ``+-*^`` between digits, ``.`` between a lower- and an upper-case letter, ``,``
   between letters, hyphens and ``:<>=/`` after a letter or digit and before a letter.
5. Runs of two or three tokens that spell a special case (``):``, ``d.``) are joined again,
   as spaCy's second pass does (:func:`~operators.quality.special_cases.merge_specials`).

Chunks of letters only or ASCII digits only are single tokens unless they are special
cases; :data:`FAST_PATH` lets a caller skip the rules for them.

Known differences from spaCy 3.8: the special-case table is abridged (frequent
contractions, abbreviations and emoticons; spaCy lists about 1,350 forms) and letters are
Unicode letters where spaCy lists scripts. On the 7.07 million chunks of devdocs, 99.9992%
of occurrences get spaCy's tokens (``bench/quality.py --words N`` lists the rest).

Reference: spaCy tokenizer algorithm, https://spacy.io/usage/linguistic-features#how-tokenizer-works
"""

from __future__ import annotations

import functools
import re
import unicodedata

from operators.quality.special_cases import MAX_SPECIAL, merge_specials, special_tokens

FAST_PATH = r"^(?:\p{L}+|[0-9]+)$"
"""RE2 pattern of the chunks that are one token unless they are in ``special_cases.SPECIAL_WORDS``."""

_QUOTES = "'\"\u201d\u201c`\u2018\u00b4\u2019\u201a\u201e\u00bb\u00ab\u300c\u300d\u300e\u300f" \
          "\uff08\uff09\u3014\u3015\u3010\u3011\u300a\u300b\u3008\u3009\u2329\u232a\u27e6\u27e7"
_PUNCT = "\u2026,:;!?\u00bf\u061f\u00a1()[]{}<>_#*&\u3002\uff1f\uff01\uff0c\u3001\uff1b\uff1a" \
         "\uff5e\u00b7\u0964\u060c\u06d4\u061b\u066a"
_CURRENCY = "$\u00a3\u20ac\u00a5\u0e3f\ufdfc" + "".join(map(chr, range(0x20A0, 0x20C0)))
_CURRENCY_WORDS = ("US$", "C$", "A$")
_UNITS = frozenset(
    "km km\u00b2 km\u00b3 m m\u00b2 m\u00b3 dm dm\u00b2 dm\u00b3 cm cm\u00b2 cm\u00b3 mm mm\u00b2 "
    "mm\u00b3 ha \u00b5m nm yd in ft kg g mg \u00b5g t lb oz m/s km/h kmh mph hPa Pa mbar mb MB "
    "kb KB gb GB tb TB T G M K %".split()
) | frozenset(_CURRENCY) | frozenset(_CURRENCY_WORDS)
_MAX_UNIT = max(map(len, _UNITS))
_DIGITS = "0123456789"
_PERIOD_AFTER = frozenset("0123456789%\u00b2-+|" + _QUOTES + _PUNCT)  # spaCy lists "|" too
_DASHES = "\u2014\u2013"

_URL = re.compile(
    r"(?:[\w+.\-]{2,}://)?"  # scheme
    r"(?:[^\s@/]+@)?"  # user@
    r"(?!(?:10|127)(?:\.\d{1,3}){3})(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})"
    r"(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"  # private networks are not hosts
    r"(?:(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
    r"\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4])"  # an IPv4 address
    r"|(?:(?:[A-Za-z0-9\u00a1-\uffff][A-Za-z0-9\u00a1-\uffff_-]{0,62})?"
    r"[A-Za-z0-9\u00a1-\uffff]\.)+(?:[LOWER]{2,63}))"  # host names and a lower-case TLD
    r"(?::\d{2,5})?(?:[/?#]\S*)?"  # port, path
)


def _ranges(codepoints: list[int]) -> str:
    """A regex character-class body for sorted ``codepoints``."""
    parts, start, prev = [], None, None
    for cp in codepoints + [-2]:
        if start is not None and cp != prev + 1:
            parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = None
        if start is None:
            start = cp
        prev = cp
    return "".join(parts)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(URL, infix) patterns, built once per process from the Unicode tables (the build walks every code point)."""
    lower, upper, symbols = [], [], []
    for cp in range(0x30000):  # the planes holding cased letters, scripts and emoji
        category = unicodedata.category(chr(cp))
        if category in ("Ll", "Lo"):  # spaCy counts uncased scripts as both lower and upper
            lower.append(cp)
        if category in ("Lu", "Lt", "Lo"):
            upper.append(cp)
        if category == "So":
            symbols.append(cp)
    low, up, quotes = _ranges(lower), _ranges(upper), re.escape(_QUOTES)
    alpha = r"^\W\d_"  # letters; spaCy also counts CJK punctuation (U+3000-303F) as letters
    url = re.compile(_URL.pattern.replace("LOWER", low))
    infix = re.compile(
        rf"\.\.+|\u2026|[{_ranges(symbols)}]"
        rf"|(?<=[0-9])[+\-*^](?=[0-9-])"
        rf"|(?<=[{low}{quotes}])\.(?=[{up}{quotes}])"
        rf"|(?<=[{alpha}]),(?=[{alpha}])"
        rf"|(?<=[{alpha}]|[0-9\u3000-\u303f])(?:-|\u2013|\u2014|--|---|\u2014\u2014|~)(?=[{alpha}])"
        rf"|(?<=[{alpha}]|[0-9\u3000-\u303f])[:<>=/](?=[{alpha}])"
    )
    return url, infix


def _is_symbol(char: str) -> bool:
    return unicodedata.category(char) == "So"


def _is_lower(char: str) -> bool:
    return char.islower() or (char.isalpha() and not char.isupper() and not char.istitle())


def _is_upper(char: str) -> bool:
    return char.isupper() or (char.isalpha() and not char.islower())


def _prefix_length(s: str, start: int, end: int) -> int:
    """Length of the prefix at ``s[start:end]``'s start (0: none)."""
    char = s[start]
    if char == "." and start + 1 < end and s[start + 1] == ".":
        stop = start + 2
        while stop < end and s[stop] == ".":
            stop += 1
        return stop - start
    if char in "\u00a7%=" or char in _DASHES or char in _PUNCT or char in _QUOTES:
        return 1
    if char == "+":
        return 0 if start + 1 < end and s[start + 1] in _DIGITS else 1
    if char in _CURRENCY or _is_symbol(char):
        return 1
    for word in _CURRENCY_WORDS:
        if s.startswith(word, start, end):
            return len(word)
    return 0


def _suffix_length(s: str, start: int, end: int) -> int:
    """Length of the longest suffix at ``s[start:end]``'s end (0: none)."""
    size = end - start
    if size <= 0:
        return 0
    last, best = s[end - 1], 0
    if last in _PUNCT or last in _QUOTES or last in _DASHES or _is_symbol(last):
        best = 1
    if size >= 2:
        before = s[end - 2]
        if last == "\u2026" and before == "\u2026":
            best = 2
        if last in "sS" and before in "'\u2019":
            best = 2
        if last == "+" and before in _DIGITS:
            best = max(best, 1)
        if last == ".":
            if before == ".":
                run = 2
                while run < size and s[end - run - 1] == ".":
                    run += 1
                best = max(best, run)
            elif (before in _PERIOD_AFTER or _is_lower(before)
                  or (size >= 3 and _is_upper(before) and _is_upper(s[end - 3]))
                  or (size >= 3 and s[end - 3] == "\u00b0" and before in "FfCcKk")):
                best = max(best, 1)
        for length in range(min(_MAX_UNIT, size - 1), best, -1):  # a unit after a digit
            if s[end - length - 1] in _DIGITS and s[end - length:end] in _UNITS:
                return length
    return best


def _split_infixes(core: str) -> list[str]:
    """``core`` cut at its infixes (an infix at position 0 does not cut)."""
    url, infix = _patterns()
    if url.fullmatch(core):
        return [core]
    tokens, start = [], 0
    for match in infix.finditer(core):
        if match.start() == 0:
            continue
        if match.start() != start:
            tokens.append(core[start:match.start()])
        if match.end() > match.start():
            tokens.append(match.group())
        start = match.end()
    if start < len(core):
        tokens.append(core[start:])
    return tokens


def split_chunk(chunk: str) -> tuple[str, ...]:
    """The tokens of one whitespace-free chunk.

    Args:
        chunk: A non-empty string holding no whitespace.

    Returns:
        The tokens, in order; they concatenate back to ``chunk``.
    """
    special = special_tokens(chunk)
    if special is not None:
        return special
    start, end, size = 0, len(chunk), -1
    prefixes: list[str] = []
    suffixes: list[str] = []
    core: tuple[str, ...] | None = None
    while start < end and end - start != size:
        size = end - start
        pre = _prefix_length(chunk, start, end)
        if pre and start + pre < end and end - start - pre <= MAX_SPECIAL:
            core = special_tokens(chunk[start + pre:end])
            if core is not None:
                prefixes.append(chunk[start:start + pre])
                start += pre
                break
        suf = _suffix_length(chunk, start + pre, end)
        if suf and end - suf > start and end - suf - start <= MAX_SPECIAL:
            core = special_tokens(chunk[start:end - suf])
            if core is not None:
                suffixes.append(chunk[end - suf:end])
                end -= suf
                break
        if pre and suf and pre + suf <= size:
            prefixes.append(chunk[start:start + pre])
            suffixes.append(chunk[end - suf:end])
            start, end = start + pre, end - suf
        elif pre:
            prefixes.append(chunk[start:start + pre])
            start += pre
        elif suf:
            suffixes.append(chunk[end - suf:end])
            end -= suf
        if end - start <= MAX_SPECIAL:
            core = special_tokens(chunk[start:end])
            if core is not None:
                break
    if core is None and start < end:
        core = tuple(_split_infixes(chunk[start:end]))
    tokens = (*prefixes, *(core or ()), *reversed(suffixes))
    return merge_specials(tokens) if len(tokens) > 1 else tokens


def split_words(text: str) -> list[str]:
    """Every word of ``text``, as datatrove's ``split_into_words(text, "eng")`` gives them."""
    return [token for chunk in text.split() for token in split_chunk(chunk)]
