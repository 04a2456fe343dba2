"""C4's heuristic rules (Raffel et al. 2020, section 2.2), as document-level signals."""

from __future__ import annotations

import logging
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from operators.base import OperatorConfig
from operators.quality.charsets import TERMINAL_PUNCTUATION, WHITESPACE
from operators.quality.scoring import QualityScorer, Signal, at_least
from operators.quality.text_stats import TextStats, numpy, per_doc
from operators.quality.words import split_words
from operators.registry import register

logger = logging.getLogger(__name__)

CITATION = r"\[\d*\]|\[edit\]|\[citation needed\]"
"""Wikipedia-style citation marks, removed from a line before its other rules."""
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
          "use cookies")
"""Phrases of boilerplate lines (cookie banners, legal footers)."""
_TERMINAL_END = r"[.?!\"']$"
_ELLIPSIS_END = r"\.\.\.$"


class C4LineRules(OperatorConfig):
    """Which lines C4 removes; None or False switches a rule off."""

    remove_citations: bool = Field(True, description="Remove [1], [edit], [citation needed].")
    terminal_punctuation: bool = Field(
        True, description="Remove lines not ending in . ? ! \" or ' (or ending in '...').")
    min_words: int | None = Field(3, ge=0, description="Remove lines with fewer words.")
    max_word_length: int | None = Field(
        1000, ge=1, description="Remove lines holding a longer word (code points).")
    javascript: bool = Field(True, description="Remove lines mentioning 'javascript'.")
    policy: bool = Field(True, description="Remove lines with a cookie or legal-policy phrase.")


class C4QualityConfig(OperatorConfig):
    """C4's line rules and document rules; None or False switches a rule off."""

    lines: C4LineRules = Field(C4LineRules(), description="Line removal rules.")
    min_num_sentences: int | None = Field(
        5, ge=0, description="Fewest sentences the kept lines must hold.")
    lorem_ipsum: bool = Field(True, description="Drop documents whose kept lines say 'lorem ipsum'.")
    curly_bracket: bool = Field(True, description="Drop documents whose kept lines hold '{'.")


@register("c4_quality")
class C4Quality(QualityScorer[C4QualityConfig]):
    """C4's rules as datatrove applies them, as signals and pass flags; text is unchanged.

    Reference: Raffel et al. 2020, "Exploring the Limits of Transfer Learning", section
    2.2; datatrove 0.10.1's C4QualityFilter with its defaults (``split_paragraph=True``).

    Algorithm. datatrove walks the ``str.splitlines()`` lines of a document, each stripped,
    and removes a line that holds a word (``str.split()``) over ``max_word_length``; whose
    text, citations removed, does not end in ``. ? ! " '`` or ends in ``...``; that has
    fewer than ``min_words`` words; that mentions "javascript" (any case); or that holds a
    policy phrase. Before the last two tests, a line saying "lorem ipsum" or holding ``{``
    drops the whole document. The document is also dropped when its kept lines hold fewer
    than ``min_num_sentences`` sentences (spaCy's sentencizer: a sentence ends at a
    sentence-ending mark followed by a word that is not punctuation). Here every line is
    tested in one vectorized pass, and the rules read:

    * ``num_sentences``: sentences in the kept lines; at least 5.
    * ``lorem_ipsum``: lines that reach the lorem test and say "lorem ipsum"; must be 0.
    * ``curly_bracket``: lines that reach the bracket test and hold ``{``; must be 0.

    Context signals (no rule): ``line_count`` (lines), ``kept_lines`` (lines C4 keeps) and
    ``kept_chars`` (code points of the text C4 would leave: the kept lines, citations
    removed, joined by ``\\n``).

    **Line removal.** datatrove's filter rewrites ``text`` to the kept lines. This operator
    only adds columns, so ``text`` is unchanged and later stages see every line; the
    signals describe the document as C4 would leave it (``kept_chars`` / ``kept_lines``
    say how much would remain), and the pass flag reproduces datatrove's keep/drop
    decision. A stage that needs the trimmed text must remove the lines itself.

    Reads: text. Writes: ``quality_c4_<signal>`` (int64), ``quality_c4_<rule>_ok`` (bool)
    and ``quality_c4_pass`` (bool). Drop reasons: none (a ``filter`` decides).
    Deterministic; no state beyond the config.
    """

    version = 1
    Config = C4QualityConfig
    family = "c4"

    @classmethod
    def signals(cls, config: OperatorConfig) -> tuple[Signal, ...]:
        """The three document rules, then the context signals."""
        if not isinstance(config, C4QualityConfig):
            raise TypeError(f"c4_quality needs a C4QualityConfig, got {type(config).__name__}")
        count = pa.int64()
        return (
            Signal("num_sentences", count, check=at_least(config.min_num_sentences)),
            Signal("lorem_ipsum", count, check=(lambda v: v == 0) if config.lorem_ipsum else None),
            Signal("curly_bracket", count,
                   check=(lambda v: v == 0) if config.curly_bracket else None),
            Signal("line_count", count, rule=False),
            Signal("kept_lines", count, rule=False),
            Signal("kept_chars", count, rule=False),
        )

    def score(self, stats: TextStats) -> dict[str, np.ndarray]:
        """Every signal of every document of ``stats``."""
        rules, lines, n = self.config.lines, stats.lines, stats.num_docs
        text = pc.utf8_trim(lines.text, WHITESPACE)
        cited = np.zeros(len(lines.doc), dtype=bool)
        if rules.remove_citations:
            cited = numpy(pc.match_substring_regex(text, CITATION))
            if cited.any():
                text = pc.replace_substring_regex(text, CITATION, "")

        def has(pattern: str) -> np.ndarray:
            return numpy(pc.match_substring_regex(text, pattern, ignore_case=True))

        chunks = stats.line_chunks
        reaches = np.ones(len(lines.doc), dtype=bool)  # the line reaches the next test
        if rules.max_word_length is not None:
            longest = np.zeros(len(lines.doc), dtype=np.int64)
            np.maximum.at(longest, chunks.parent, chunks.length)
            reaches &= longest <= rules.max_word_length
        if rules.terminal_punctuation:
            reaches &= numpy(pc.match_substring_regex(text, _TERMINAL_END))
            reaches &= ~numpy(pc.match_substring_regex(text, _ELLIPSIS_END))
        if rules.min_words is not None:
            reaches &= np.bincount(chunks.parent, minlength=len(lines.doc)) >= rules.min_words
        lorem = reaches & has("lorem ipsum") if self.config.lorem_ipsum else reaches & False
        reaches &= ~lorem
        if rules.javascript:
            reaches &= ~has("javascript")
        curly = reaches & numpy(pc.match_substring(text, "{")) if self.config.curly_bracket \
            else reaches & False
        reaches &= ~curly
        if rules.policy:
            reaches &= ~has("|".join(POLICY))
        kept = reaches

        kept_doc = lines.doc[kept]
        kept_lines = per_doc(kept_doc, n)
        kept_chars = per_doc(kept_doc, n, numpy(pc.utf8_length(text))[kept]).astype(np.int64)
        return {
            "num_sentences": self._sentences(stats, kept, kept & cited, text),
            "lorem_ipsum": per_doc(lines.doc[lorem], n),
            "curly_bracket": per_doc(lines.doc[curly], n),
            "line_count": per_doc(lines.doc, n),
            "kept_lines": kept_lines,
            "kept_chars": kept_chars + np.maximum(kept_lines - 1, 0),
        }

    @staticmethod
    def _sentences(stats: TextStats, kept: np.ndarray, rewritten: np.ndarray,
                   text: pa.Array) -> np.ndarray:
        """Sentences of the kept lines, per document (lines whose citations were removed
        are tokenized again, as their words changed)."""
        words = stats.words
        word = ~words.vocab_punct[words.token] & ~words.vocab_terminal[words.token]
        ends = words.vocab_terminal[words.token]
        position = np.arange(len(words.token), dtype=words.token.dtype)
        last_end = _last_before(np.where(ends, position, -1))
        last_word = _last_before(np.where(word, position, -1))
        same_line = words.line[np.maximum(last_end, 0)] == words.line
        starts = word & (last_end > last_word) & (last_end >= 0) & same_line
        per_line = 1 + np.bincount(words.line[starts], minlength=len(kept))
        for line in np.flatnonzero(rewritten):
            per_line[line] = _sentence_count(split_words(text[int(line)].as_py()))
        return per_doc(stats.lines.doc[kept], stats.num_docs, per_line[kept]).astype(np.int64)


def _last_before(marks: np.ndarray) -> np.ndarray:
    """For each position, the largest mark (-1: none) strictly before it."""
    running = np.maximum.accumulate(marks) if len(marks) else marks
    return np.concatenate(([-1], running[:-1])) if len(marks) else marks


def _sentence_count(tokens: list[str]) -> int:
    """Sentences of one line's words, as spaCy's sentencizer splits them."""
    count, ended = 1, False
    for token in tokens:
        terminal = token in TERMINAL_PUNCTUATION
        if ended and not terminal and not all(unicodedata.category(c)[0] == "P" for c in token):
            count, ended = count + 1, False
        elif terminal:
            ended = True
    return count
