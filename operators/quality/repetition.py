"""Gopher's repetition rules (Rae et al. 2021, appendix A, table A1), one signal per rule."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from operators.base import OperatorConfig
from operators.quality.charsets import WHITESPACE
from operators.quality.ngrams import NGramIndex
from operators.quality.scoring import QualityScorer, Signal, at_least, at_most
from operators.quality.text_stats import TextStats, ratio, split_pieces
from operators.registry import register

logger = logging.getLogger(__name__)

NGramLimits = tuple[tuple[int, float], ...]


def _check_limits(limits: NGramLimits) -> NGramLimits:
    sizes = [n for n, _ in limits]
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"each n may appear once, got {sizes}")
    for n, fraction in limits:
        if not 1 <= n <= 64 or not 0 <= fraction <= 1:
            raise ValueError(f"need 1 <= n <= 64 and 0 <= fraction <= 1, got ({n}, {fraction})")
    return limits


class GopherRepetitionConfig(OperatorConfig):
    """Thresholds of the Gopher repetition rules; None switches a rule off."""

    dup_line_frac: float | None = Field(
        0.3, ge=0, le=1, description="Largest fraction of lines repeating an earlier line.")
    dup_para_frac: float | None = Field(
        0.3, ge=0, le=1,
        description="Largest fraction of paragraphs repeating an earlier paragraph.")
    dup_line_char_frac: float | None = Field(
        0.2, ge=0, le=1, description="Largest share of characters in repeated lines.")
    dup_para_char_frac: float | None = Field(
        0.2, ge=0, le=1, description="Largest share of characters in repeated paragraphs.")
    top_ngram_char_frac: NGramLimits = Field(
        ((2, 0.2), (3, 0.18), (4, 0.16)),
        description="(n, largest share of characters in the most frequent word n-gram).")
    dup_ngram_char_frac: NGramLimits = Field(
        ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)),
        description="(n, largest share of characters in repeated word n-grams).")

    @field_validator("top_ngram_char_frac", "dup_ngram_char_frac")
    @classmethod
    def _limits_valid(cls, limits: NGramLimits) -> NGramLimits:
        return _check_limits(limits)


@register("gopher_repetition")
class GopherRepetition(QualityScorer[GopherRepetitionConfig]):
    """Gopher's repetition rules as datatrove applies them: a signal and a pass flag per rule.

    Reference: Rae et al. 2021, "Scaling Language Models", appendix A, table A1; datatrove
    0.10.1's GopherRepetitionFilter, whose defaults these are.

    Algorithm, per document of ``len(text)`` code points (every share below divides by it):

    * Paragraphs: ``text.strip()`` split on runs of two or more ``\\n``. Lines: ``text``
      split on runs of ``\\n``. A piece equal to an earlier piece of the document is a
      repeat. ``dup_para_frac`` / ``dup_line_frac``: repeats / pieces (default at most
      0.3); ``dup_para_char_frac`` / ``dup_line_char_frac``: code points of the repeats
      (at most 0.2).
    * Words are datatrove's (:mod:`operators.quality.words`). ``top_<n>gram_char_frac``:
      the most frequent word n-gram (ties: the first seen), its length with single spaces
      times its count (n = 2, 3, 4: at most 0.2, 0.18, 0.16).
      ``dup_<n>gram_char_frac``: code points (without spaces) of repeated n-grams counted
      by datatrove's greedy left-to-right scan, see :mod:`operators.quality.ngrams`
      (n = 5..10: at most 0.15 down to 0.10).
    * ``chars``: ``len(text)``; the rule is ``chars >= 1`` (datatrove drops empty text).

    N-grams are compared word by word, where datatrove compares their concatenation: two
    n-grams that differ only in where their words split (``ab c`` and ``a bc``) are
    repeats there and not here.

    Reads: text. Writes: ``quality_repetition_<rule>`` (float64 shares; ``chars`` int64),
    ``quality_repetition_<rule>_ok`` (bool) and ``quality_repetition_pass`` (bool). Drop
    reasons: none (a ``filter`` decides). Deterministic; no state beyond the config.
    """

    version = 1
    Config = GopherRepetitionConfig
    family = "repetition"

    @classmethod
    def signals(cls, config: OperatorConfig) -> tuple[Signal, ...]:
        """Line, paragraph and n-gram rules, with ``config``'s thresholds."""
        if not isinstance(config, GopherRepetitionConfig):
            raise TypeError(f"gopher_repetition needs a GopherRepetitionConfig, "
                            f"got {type(config).__name__}")
        share = pa.float64()
        return (
            Signal("chars", pa.int64(), check=at_least(1)),
            Signal("dup_para_frac", share, check=at_most(config.dup_para_frac)),
            Signal("dup_para_char_frac", share, check=at_most(config.dup_para_char_frac)),
            Signal("dup_line_frac", share, check=at_most(config.dup_line_frac)),
            Signal("dup_line_char_frac", share, check=at_most(config.dup_line_char_frac)),
            *(Signal(f"top_{n}gram_char_frac", share, check=at_most(limit))
              for n, limit in config.top_ngram_char_frac),
            *(Signal(f"dup_{n}gram_char_frac", share, check=at_most(limit))
              for n, limit in config.dup_ngram_char_frac),
        )

    def score(self, stats: TextStats) -> dict[str, np.ndarray]:
        """Every signal of every document of ``stats``."""
        n, chars = stats.num_docs, stats.chars
        out: dict[str, np.ndarray] = {"chars": chars}
        paragraphs = split_pieces(pc.utf8_trim(stats.text, WHITESPACE), r"\n\n+")
        lines = split_pieces(stats.text, r"\n+")
        for name, pieces in (("para", paragraphs), ("line", lines)):
            repeats, repeat_chars = pieces.duplicates(n)
            out[f"dup_{name}_frac"] = ratio(repeats, np.bincount(pieces.doc, minlength=n))
            out[f"dup_{name}_char_frac"] = ratio(repeat_chars, chars)

        words = stats.words
        index = NGramIndex(words.token, words.doc, words.vocab_length[words.token], n)
        top = dict(self.config.top_ngram_char_frac)
        dup = dict(self.config.dup_ngram_char_frac)
        for size in sorted(top.keys() | dup.keys()):
            if size in top:
                out[f"top_{size}gram_char_frac"] = ratio(index.top_chars(size), chars)
            if size in dup:
                out[f"dup_{size}gram_char_frac"] = ratio(index.duplicate_chars(size), chars)
        return out
