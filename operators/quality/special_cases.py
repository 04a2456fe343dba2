"""spaCy's English special cases, abridged: the chunks its tokenizer does not cut by rule.

A special case is a whole string with fixed tokens: contractions (``don't`` -> ``do n't``,
``cannot`` -> ``can not``), abbreviations whose period stays (``e.g.``, ``Mr.``, ``x.``) and
emoticons (``:)``). spaCy 3.8 lists about 1,350 of them; this table keeps the frequent
families and states contractions as rules. After the affix and infix rules, spaCy merges
runs of tokens that spell a special case again (``value):`` ends in ``):``); so does
:func:`merge_specials`.
"""

from __future__ import annotations

import functools
import re

# Abbreviations whose final period stays attached, and single tokens that the
# affix rules would otherwise cut.
_WHOLE = frozenset(
    "e.g. i.e. E.g. I.e. a.m. p.m. vs. Mr. Mrs. Ms. Dr. Prof. St. Jr. Inc. Ltd. Co. Corp. "
    "Bros. Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. Dec. Gen. Gov. Rep. Sen. "
    "Rev. Mt. Ph.D. O.K. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ill. Ind. Kan. Ky. "
    "La. Md. Mass. Mich. Minn. Miss. Mo. Mont. Neb. Nev. Okla. Ore. Pa. Tenn. Va. Wash. Wis. "
    "C++ and/or w/o 's 'S 'em 'cause \\n \\t 0.0".split()
)
# Emoticons and doubled quotes: single tokens even when the affix rules cut them apart, as
# spaCy's second pass re-merges them.
_MERGED = frozenset(
    "'' :) :( :-) :-( ;) ;-) :D :P :p :/ :-/ :] :[ ): (: (= =) 8) :* :o :O <3 </3 ^_^ -_- "
    "o_O O_o o_o XD =D =/ :| :-| [: [= :-D :-P (-: (; :(( :)) :))) :0 :1 :X :x 'd".split()
)
_HOURS = frozenset(f"{hour}{half}" for hour in range(1, 13) for half in ("am", "pm"))
# Contractions written without the apostrophe, split where the apostrophe would be.
_UNMARKED = {
    "cannot": 3, "dont": 2, "doesnt": 4, "didnt": 3, "isnt": 2, "arent": 3, "wasnt": 3,
    "werent": 4, "cant": 2, "wont": 2, "wouldnt": 5, "couldnt": 5, "shouldnt": 6, "havent": 4,
    "hasnt": 3, "hadnt": 3, "aint": 2, "im": 1, "id": 1, "ive": 1, "youre": 3, "youve": 3,
    "youll": 3, "youd": 3, "theyre": 4, "theyve": 4, "theyll": 4, "theyd": 4, "thats": 4,
    "whats": 4, "hows": 3, "whys": 3, "wheres": 5, "whos": 3, "hes": 2, "shes": 3, "wed": 2,
    "weve": 2, "itll": 2, "itd": 2, "gonna": 3, "gotta": 3,
}
SPECIAL_WORDS = frozenset(_UNMARKED) | frozenset(word.title() for word in _UNMARKED)
"""The chunks of letters only that are special cases (``cannot`` -> ``can not``)."""
_CONTRACTION = re.compile(r"([A-Za-z]+)((?:n['\u2019]t|['\u2019](?:re|ve|ll|d|m|s|RE|VE|LL|D|M|S))+)")
# Pronouns and modals that take 'd 'll 're 've 'm; any word takes n't and 's.
_STEMS = frozenset(
    "i you he she it we they this that these those there here what who where when why how "
    "could would should might must".split()
)
_TAIL = re.compile(r"n['\u2019]t|['\u2019][A-Za-z]+")
_SPLIT = {"y'all": ("y'", "all"), "Y'all": ("Y'", "all"), "y\u2019all": ("y\u2019", "all"),
          "Y\u2019all": ("Y\u2019", "all")}
MAX_SPECIAL = 16
"""No special case is longer (code points)."""


def special_tokens(text: str) -> tuple[str, ...] | None:
    """The tokens of ``text`` when it is a special case as a whole, else None."""
    if len(text) > MAX_SPECIAL:
        return None
    if text in _WHOLE or text in _MERGED or is_letter_abbreviation(text):
        return (text,)
    if text in _SPLIT:
        return _SPLIT[text]
    if text in _HOURS:
        return text[:-2], text[-2:]
    cut = _UNMARKED.get(text) or (_UNMARKED.get(text.lower()) if text.istitle() else None)
    if cut:
        return text[:cut], text[cut:]
    match = _CONTRACTION.fullmatch(text)
    if match:  # don't -> do n't, we'd've -> we 'd 've
        stem, tails = match.group(1), _TAIL.findall(match.group(2))
        if stem.lower() in _STEMS or tails[0][-1] in "tsS":
            return stem, *tails
    return None


def is_letter_abbreviation(text: str) -> bool:
    """A lower-case letter and a period (``x.``): spaCy keeps those whole."""
    return len(text) == 2 and text[1] == "." and "a" <= text[0] <= "z"


@functools.cache
def _merge_starts() -> frozenset[str]:
    """Tokens that can begin a run spelling a special case: its proper prefixes."""
    specials = _MERGED | _WHOLE | {f"{chr(c)}." for c in range(ord("a"), ord("z") + 1)}
    return frozenset(s[:i] for s in specials for i in range(1, len(s)))


def merge_specials(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """``tokens`` with runs of two or three that spell a whole special case (an emoticon,
    ``x.``) joined, left to right, as spaCy's special-case matcher does after the rules."""
    starts = _merge_starts()
    if not any(token in starts for token in tokens[:-1]):
        return tokens
    merged, i = [], 0
    while i < len(tokens):
        for width in (3, 2):
            joined = "".join(tokens[i:i + width])
            if i + width <= len(tokens) and (joined in _MERGED or joined in _WHOLE
                                             or is_letter_abbreviation(joined)):
                merged.append("".join(tokens[i:i + width]))
                i += width
                break
        else:
            merged.append(tokens[i])
            i += 1
    return tuple(merged)
