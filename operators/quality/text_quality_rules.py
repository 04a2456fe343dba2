"""The line rules of ``text_quality_score`` and how a document's words pass them.

Every rule is a pass/fail test of one line (a ``str.splitlines()`` line). A document's
figure for a rule is the share of its words that sit in lines passing the rule; the
score combines those shares with the rule weights (:func:`combine`). Everything is
computed from the batch's shared :class:`~operators.quality.text_stats.TextStats` (its
lines, whitespace chunks and words), so a fused stage after the other quality families
tokenizes nothing again; per-line figures are ``np.bincount`` sums over the flat word and
chunk arrays, and word features (letters, capitals, digits) are computed once per
distinct word of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from operators.base import OperatorConfig
from operators.quality.c4 import CITATION, POLICY
from operators.quality.charsets import TERMINAL_PUNCTUATION, WHITESPACE, re2_class
from operators.quality.grouping import group_pairs
from operators.quality.scoring import Bounds
from operators.quality.text_stats import TextStats, Words, numpy, per_doc, ratio

RULES = (
    "terminal_punct", "min_words", "max_word_length", "no_javascript", "no_policy",
    "no_lorem_ipsum", "no_curly_bracket", "no_bullet", "no_ellipsis", "alpha_words",
    "word_length", "max_uppercase", "max_digits", "unique_line",
)
"""The rules, in column and artifact order."""

BULLETS = "-*\u2022\u2023\u25e6\u25aa\u25ab\u25a0\u25a1\u25b6\u25ba\u2013\u2014\u00b7"
"""Characters that open a bullet line: - * • ‣ ◦ ▪ ▫ ■ □ ▶ ► – — ·."""
_CLOSERS = "\"')]}\u00bb\u201d\u2019\u300d\u300f"
_TERMINAL_END = (f"{re2_class(TERMINAL_PUNCTUATION)}(?:{re2_class(frozenset(_CLOSERS))}|"
                 f"{CITATION})*$")
_ELLIPSIS_END = r"(?:\.\.\.|\x{2026})$"
_BOILERPLATE = "|".join(("javascript", "lorem ipsum", *POLICY))


class TextQualityRules(OperatorConfig):
    """Thresholds of the line rules that have one."""

    min_words: int = Field(3, ge=0, description="A line with fewer whitespace-separated words "
                           "fails min_words (C4: 3).")
    max_word_length: int = Field(1000, ge=1, description="A line with a longer whitespace-"
                                 "separated word, in code points, fails max_word_length (C4: 1000).")
    min_alpha_word_ratio: float = Field(0.8, ge=0, le=1, description="Smallest share of a line's "
                                        "non-symbol words holding a letter (Gopher: 0.8).")
    word_length: Bounds = Field(Bounds(min=3, max=10), description="Allowed mean code points of a "
                                "line's non-symbol words (Gopher: 3 to 10).")
    max_uppercase_ratio: float = Field(0.5, ge=0, le=1, description="Largest share of a line's "
                                       "letters that are capitals.")
    max_digit_ratio: float = Field(0.25, ge=0, le=1, description="Largest share of a line's "
                                   "non-whitespace code points that are decimal digits.")


class TextQualityWeights(OperatorConfig):
    """Weight of each rule in the score; 0 leaves a rule out. Defaults: 1 each."""

    terminal_punct: float = Field(1.0, ge=0, description="Line ends in a sentence-ending mark "
                                  "(closing quotes, brackets and [1]-style citations after it allowed).")
    min_words: float = Field(1.0, ge=0, description="Line has at least rules.min_words words.")
    max_word_length: float = Field(1.0, ge=0, description="No word longer than rules.max_word_length.")
    no_javascript: float = Field(1.0, ge=0, description="Line does not mention 'javascript' (any case).")
    no_policy: float = Field(1.0, ge=0, description="No cookie or legal-policy phrase (C4's list).")
    no_lorem_ipsum: float = Field(1.0, ge=0, description="Line does not say 'lorem ipsum' (any case).")
    no_curly_bracket: float = Field(1.0, ge=0, description="Line holds no '{'.")
    no_bullet: float = Field(1.0, ge=0, description="Line does not start with a bullet character.")
    no_ellipsis: float = Field(1.0, ge=0, description="Line does not end in '...' or '\u2026'.")
    alpha_words: float = Field(1.0, ge=0, description="Share of non-symbol words holding a letter "
                               "is at least rules.min_alpha_word_ratio.")
    word_length: float = Field(1.0, ge=0, description="Mean non-symbol word length within "
                               "rules.word_length.")
    max_uppercase: float = Field(1.0, ge=0, description="Capitals share of letters at most "
                                 "rules.max_uppercase_ratio.")
    max_digits: float = Field(1.0, ge=0, description="Digit share at most rules.max_digit_ratio.")
    unique_line: float = Field(1.0, ge=0, description="Line (stripped) differs from every earlier "
                               "line of the document.")

    @model_validator(mode="after")
    def _some_weight(self) -> TextQualityWeights:
        if not any(self.vector()):
            raise ValueError("at least one weight must be above 0")
        return self

    def vector(self) -> np.ndarray:
        """The weights in :data:`RULES` order."""
        return np.array([getattr(self, rule) for rule in RULES], dtype=np.float64)


@dataclass(frozen=True)
class RuleWords:
    """Per document: its words, and for each rule the words in lines passing it."""

    words: np.ndarray
    passing: np.ndarray  # (documents, rules), float64

    def shares(self) -> np.ndarray:
        """Share of each document's words in lines passing each rule (0 without words)."""
        out = np.zeros_like(self.passing)
        np.divide(self.passing, self.words[:, None], out=out, where=self.words[:, None] > 0)
        return out


def combine(shares: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The score: ``sum_i w_i share_i / sum_i w_i``, clipped to [0, 1] against rounding."""
    total = float(weights.sum())
    if total <= 0:
        raise ValueError("the rule weights sum to 0; at least one must be above 0")
    # an element-wise sum in rule order, not a BLAS product, so a document's score is the
    # same to the last bit whatever the batch around it
    weighted = np.zeros(len(shares), dtype=np.float64)
    for i, weight in enumerate(weights):
        weighted += shares[:, i] * weight
    return np.clip(weighted / total, 0.0, 1.0)


def rule_words(stats: TextStats, rules: TextQualityRules) -> RuleWords:
    """Every rule on every line of ``stats``, summed per document in words."""
    passed, line_words = line_rules(stats, rules)
    doc = stats.lines.doc
    words = per_doc(doc, stats.num_docs, line_words.astype(np.float64))
    passing = np.empty((stats.num_docs, len(RULES)), dtype=np.float64)
    for i in range(len(RULES)):
        passing[:, i] = per_doc(doc, stats.num_docs, np.where(passed[:, i], line_words, 0.0))
    return RuleWords(words, passing)


def line_rules(stats: TextStats, rules: TextQualityRules) -> tuple[np.ndarray, np.ndarray]:
    """(lines x rules bool pass matrix in :data:`RULES` order, words per line)."""
    lines, chunks, words = stats.lines, stats.line_chunks, stats.words
    count = len(lines.doc)
    line_words = np.bincount(words.line, minlength=count).astype(np.float64)
    stripped = pc.utf8_trim(lines.text, WHITESPACE)
    first = pc.utf8_slice_codeunits(stripped, 0, 1)

    chunk_count = np.bincount(chunks.parent, minlength=count)
    longest = np.zeros(count, dtype=np.int64)
    if len(chunks.parent):
        starts = np.flatnonzero(np.r_[True, chunks.parent[1:] != chunks.parent[:-1]])
        longest[chunks.parent[starts]] = np.maximum.reduceat(chunks.length, starts)
    visible = np.bincount(chunks.parent, weights=chunks.length, minlength=count)

    token, line = words.token, words.line
    non_symbol = words.vocab_non_symbol[token]
    ns_line = line[non_symbol]
    ns_count = np.bincount(ns_line, minlength=count)
    ns_length = np.bincount(ns_line, weights=words.vocab_length[token[non_symbol]], minlength=count)
    alpha = np.bincount(line[words.vocab_letter[token]], minlength=count)
    mean_length = ratio(ns_length, ns_count)
    letters = _per_line(words, r"\p{L}", count)
    capitals = _per_line(words, r"\p{Lu}", count)
    digits = _per_line(words, r"\p{Nd}", count)

    javascript = policy = lorem = np.zeros(count, dtype=bool)
    suspect = np.flatnonzero(numpy(pc.match_substring_regex(lines.text, _BOILERPLATE,
                                                            ignore_case=True)))
    if len(suspect):  # rare: test the phrases one by one on those lines only
        text = lines.text.take(pa.array(suspect))

        def hits(pattern: str) -> np.ndarray:
            out = np.zeros(count, dtype=bool)
            out[suspect] = numpy(pc.match_substring_regex(text, pattern, ignore_case=True))
            return out

        javascript, lorem, policy = hits("javascript"), hits("lorem ipsum"), hits("|".join(POLICY))

    ids = numpy(pc.dictionary_encode(stripped).indices).astype(np.int64)
    first_seen = group_pairs(lines.doc.astype(np.int64), ids).first
    low, high = rules.word_length.min, rules.word_length.max
    columns = {
        "terminal_punct": numpy(pc.match_substring_regex(stripped, _TERMINAL_END)),
        "min_words": chunk_count >= rules.min_words,
        "max_word_length": longest <= rules.max_word_length,
        "no_javascript": ~javascript,
        "no_policy": ~policy,
        "no_lorem_ipsum": ~lorem,
        "no_curly_bracket": ~numpy(pc.match_substring(lines.text, "{")),
        "no_bullet": ~numpy(pc.is_in(first, value_set=pa.array(list(BULLETS)))),
        "no_ellipsis": ~numpy(pc.match_substring_regex(stripped, _ELLIPSIS_END)),
        "alpha_words": ratio(alpha, ns_count) >= rules.min_alpha_word_ratio,
        "word_length": ((mean_length >= low) if low is not None else True)
        & ((mean_length <= high) if high is not None else True),
        "max_uppercase": ratio(capitals, letters) <= rules.max_uppercase_ratio,
        "max_digits": ratio(digits, visible) <= rules.max_digit_ratio,
        "unique_line": first_seen,
    }
    passed = np.empty((count, len(RULES)), dtype=bool)
    for i, rule in enumerate(RULES):
        passed[:, i] = columns[rule]
    return passed, line_words


def _per_line(words: Words, pattern: str, count: int) -> np.ndarray:
    """Matches of the RE2 ``pattern`` per line, counted once per distinct word."""
    per_word = numpy(pc.count_substring_regex(words.vocab, pattern)).astype(np.float64)
    return np.bincount(words.line, weights=per_word[words.token], minlength=count)
