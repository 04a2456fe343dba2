"""Gopher's document-quality rules (Rae et al. 2021, appendix A), one signal per rule."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from operators.base import OperatorConfig
from operators.quality.charsets import WHITESPACE, re2_class
from operators.quality.scoring import Bounds, QualityScorer, Signal, at_least, at_most, between
from operators.quality.text_stats import TextStats, numpy, per_doc, ratio
from operators.registry import register

logger = logging.getLogger(__name__)

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
"""Gopher's stop words (lower case; matched case-sensitively against whole words)."""

_SPACE = re2_class(WHITESPACE)
_BULLET_LINE = f"^{_SPACE}*[\u2022-]"  # after lstrip(), starts with a bullet or a hyphen
_ELLIPSIS_LINE = f"(?:\\.\\.\\.|\u2026){_SPACE}*$"  # before rstrip(), ends with an ellipsis


class GopherQualityConfig(OperatorConfig):
    """Thresholds of the Gopher quality rules; None switches a rule off."""

    word_count: Bounds = Field(
        Bounds(min=50, max=100_000),
        description="Allowed number of non-symbol words (Gopher: 50 to 100,000).")
    mean_word_length: Bounds = Field(
        Bounds(min=3, max=10),
        description="Allowed mean length of non-symbol words, in code points (3 to 10).")
    max_symbol_word_ratio: float | None = Field(
        0.1, ge=0, description="Largest '#' count, and largest '...'/'\u2026' count, per word.")
    max_bullet_line_ratio: float | None = Field(
        0.9, ge=0, le=1, description="Largest fraction of lines starting with '\u2022' or '-'.")
    max_ellipsis_line_ratio: float | None = Field(
        0.3, ge=0, le=1, description="Largest fraction of lines ending with '...' or '\u2026'.")
    min_alpha_word_ratio: float | None = Field(
        0.8, ge=0, le=1, description="Smallest fraction of words holding a letter.")
    min_stop_words: int | None = Field(
        2, ge=0, description="Fewest distinct stop words the document must contain.")
    stop_words: tuple[str, ...] = Field(
        STOP_WORDS, min_length=1, description="The stop words (whole words, case-sensitive).")


@register("gopher_quality")
class GopherQuality(QualityScorer[GopherQualityConfig]):
    """Gopher's quality rules as datatrove applies them: a signal and a pass flag per rule.

    Reference: Rae et al. 2021, "Scaling Language Models", appendix A, table A1; datatrove
    0.10.1's GopherQualityFilter, whose defaults these are.

    Algorithm, per document. Words are datatrove's (``split_into_words``: spaCy's English
    rules, see :mod:`operators.quality.words`), so punctuation marks are words of their
    own; a *non-symbol* word holds a character outside :data:`~charsets.SYMBOLS`. Lines are
    ``str.splitlines()``, blank ones included.

    Rules (signal: value, default threshold):

    * ``word_count``: non-symbol words; 50 to 100,000.
    * ``mean_word_length``: mean code points of the non-symbol words; 3 to 10.
    * ``hash_ratio``: ``#`` count / words; at most 0.1.
    * ``ellipsis_ratio``: (``...`` + ``\u2026``) count / words; at most 0.1.
    * ``bullet_line_ratio``: lines starting, after spaces, with ``\u2022`` or ``-``; at most 0.9.
    * ``ellipsis_line_ratio``: lines ending, before spaces, with an ellipsis; at most 0.3.
    * ``alpha_word_ratio``: words holding a letter / words; at least 0.8.
    * ``stop_words``: distinct stop words among the words; at least 2.

    A ratio is 0 when its denominator is 0. ``max_symbol_word_ratio`` bounds both the hash
    and the ellipsis ratio, as in datatrove.

    Reads: text. Writes: ``quality_gopher_<rule>`` (int64 counts, float64 ratios),
    ``quality_gopher_<rule>_ok`` (bool) and ``quality_gopher_pass`` (bool: every rule
    passes). Drop reasons: none (a ``filter`` decides; e.g. ``keep: quality_gopher_pass``).
    Deterministic; no state beyond the config.
    """

    version = 1
    Config = GopherQualityConfig
    family = "gopher"

    @classmethod
    def signals(cls, config: OperatorConfig) -> tuple[Signal, ...]:
        """The eight rules, with ``config``'s thresholds."""
        if not isinstance(config, GopherQualityConfig):
            raise TypeError(f"gopher_quality needs a GopherQualityConfig, got {type(config).__name__}")
        symbols = at_most(config.max_symbol_word_ratio)
        return (
            Signal("word_count", pa.int64(), check=between(config.word_count.min,
                                                           config.word_count.max)),
            Signal("mean_word_length", pa.float64(),
                   check=between(config.mean_word_length.min, config.mean_word_length.max)),
            Signal("hash_ratio", pa.float64(), check=symbols),
            Signal("ellipsis_ratio", pa.float64(), check=symbols),
            Signal("bullet_line_ratio", pa.float64(), check=at_most(config.max_bullet_line_ratio)),
            Signal("ellipsis_line_ratio", pa.float64(),
                   check=at_most(config.max_ellipsis_line_ratio)),
            Signal("alpha_word_ratio", pa.float64(), check=at_least(config.min_alpha_word_ratio)),
            Signal("stop_words", pa.int64(), check=at_least(config.min_stop_words)),
        )

    def score(self, stats: TextStats) -> dict[str, np.ndarray]:
        """Every signal of every document of ``stats``."""
        n, words, lines = stats.num_docs, stats.words, stats.lines
        all_words = per_doc(words.doc, n)
        non_symbol = words.vocab_non_symbol[words.token]
        count = per_doc(words.doc[non_symbol], n)
        length = per_doc(words.doc[non_symbol], n, words.vocab_length[words.token[non_symbol]])
        letters = per_doc(words.doc[words.vocab_letter[words.token]], n)
        hashes = numpy(pc.count_substring(stats.text, "#"))
        ellipses = numpy(pc.count_substring(stats.text, "...")) \
            + numpy(pc.count_substring(stats.text, "\u2026"))
        line_count = per_doc(lines.doc, n)
        bullets = per_doc(lines.doc[numpy(pc.match_substring_regex(lines.text, _BULLET_LINE))], n)
        trailing = per_doc(lines.doc[numpy(pc.match_substring_regex(lines.text, _ELLIPSIS_LINE))],
                           n)
        return {
            "word_count": count,
            "mean_word_length": ratio(length, count),
            "hash_ratio": ratio(hashes, all_words),
            "ellipsis_ratio": ratio(ellipses, all_words),
            "bullet_line_ratio": ratio(bullets, line_count),
            "ellipsis_line_ratio": ratio(trailing, line_count),
            "alpha_word_ratio": ratio(letters, all_words),
            "stop_words": self._stop_words(stats),
        }

    def _stop_words(self, stats: TextStats) -> np.ndarray:
        """Distinct stop words of each document."""
        words, stop = stats.words, list(dict.fromkeys(self.config.stop_words))
        index = pc.index_in(words.vocab, value_set=pa.array(stop, words.vocab.type))
        which = numpy(pc.fill_null(index, -1)).astype(np.int64)[words.token]
        hit = which >= 0
        present = np.unique(words.doc[hit] * len(stop) + which[hit])
        return per_doc(present // len(stop), stats.num_docs)
