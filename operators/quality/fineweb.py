"""FineWeb's line-structure rules (Penedo et al. 2024, section 3.3), one signal per rule."""

from __future__ import annotations

import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from operators.base import OperatorConfig
from operators.quality.charsets import TERMINAL_PUNCTUATION, WHITESPACE, re2_class
from operators.quality.scoring import QualityScorer, Signal, at_least, at_most
from operators.quality.text_stats import Pieces, TextStats, numpy, per_doc, ratio, split_pieces
from operators.registry import register

logger = logging.getLogger(__name__)

_NOT_BLANK = re2_class(WHITESPACE, negate=True)


class FineWebQualityConfig(OperatorConfig):
    """Thresholds of the FineWeb rules; None switches a rule off."""

    line_punct_thr: float | None = Field(
        0.12, ge=0, le=1, description="Smallest fraction of lines ending in a stop character.")
    line_punct_exclude_zero: bool = Field(
        False, description="Let documents with no such line at all pass the rule above.")
    stop_chars: tuple[str, ...] | None = Field(
        None, description="Line endings that count as punctuation (None: sentence-ending marks).")
    short_line_thr: float | None = Field(
        0.67, ge=0, le=1, description="Largest fraction of short lines.")
    short_line_length: int = Field(30, ge=0, description="A line this long or shorter is short.")
    char_duplicates_ratio: float | None = Field(
        0.01, ge=0, le=1, description="Largest share of characters in repeated lines.")
    new_line_ratio: float | None = Field(
        0.3, ge=0, description="Largest number of line breaks per word.")


@register("fineweb_quality")
class FineWebQuality(QualityScorer[FineWebQualityConfig]):
    """FineWeb's line-structure rules as datatrove applies them: a signal and flag per rule.

    Reference: Penedo et al. 2024, "The FineWeb Datasets", section 3.3; datatrove 0.10.1's
    FineWebQualityFilter, whose defaults these are.

    Algorithm, per document. Lines are ``text.split("\\n")`` without the blank ones (only
    whitespace); they are not stripped, so a line ending ``".\\r"`` does not end in a stop
    character.

    * ``lines``: non-blank lines; at least 1 (datatrove drops documents without any).
    * ``line_punct_ratio``: lines ending in a stop character (default: a sentence-ending
      mark, :data:`~charsets.TERMINAL_PUNCTUATION`) / lines; at least 0.12, or exactly 0
      with ``line_punct_exclude_zero``.
    * ``short_line_ratio``: lines of at most ``short_line_length`` (30) code points / lines;
      at most 0.67.
    * ``char_dup_ratio``: code points of lines equal to an earlier line / code points of
      the text without its ``\\n``; at most 0.01.
    * ``list_ratio``: ``\\n`` count / words (datatrove's words, see
      :mod:`operators.quality.words`); at most 0.3.

    A ratio is 0 when its denominator is 0.

    Reads: text. Writes: ``quality_fineweb_<rule>`` (float64 ratios; ``lines`` int64),
    ``quality_fineweb_<rule>_ok`` (bool) and ``quality_fineweb_pass`` (bool). Drop reasons:
    none (a ``filter`` decides). Deterministic; no state beyond the config.
    """

    version = 1
    Config = FineWebQualityConfig
    family = "fineweb"

    @classmethod
    def signals(cls, config: OperatorConfig) -> tuple[Signal, ...]:
        """The five rules, with ``config``'s thresholds."""
        if not isinstance(config, FineWebQualityConfig):
            raise TypeError(f"fineweb_quality needs a FineWebQualityConfig, "
                            f"got {type(config).__name__}")
        punct = at_least(config.line_punct_thr)
        if punct is not None and config.line_punct_exclude_zero:
            threshold = config.line_punct_thr
            punct = lambda values: (values >= threshold) | (values == 0)  # noqa: E731
        return (
            Signal("lines", pa.int64(), check=at_least(1)),
            Signal("line_punct_ratio", pa.float64(), check=punct),
            Signal("short_line_ratio", pa.float64(), check=at_most(config.short_line_thr)),
            Signal("char_dup_ratio", pa.float64(), check=at_most(config.char_duplicates_ratio)),
            Signal("list_ratio", pa.float64(), check=at_most(config.new_line_ratio)),
        )

    def score(self, stats: TextStats) -> dict[str, np.ndarray]:
        """Every signal of every document of ``stats``."""
        n = stats.num_docs
        lines = split_pieces(stats.text, "\n")
        keep = numpy(pc.match_substring_regex(lines.text, _NOT_BLANK))
        lines = Pieces(lines.text.filter(pa.array(keep)), lines.parent[keep], lines.doc[keep])
        count = per_doc(lines.doc, n)
        ending = numpy(pc.match_substring_regex(lines.text, self._stop_pattern()))
        short = lines.length <= self.config.short_line_length
        _, repeat_chars = lines.duplicates(n)
        breaks = numpy(pc.count_substring(stats.text, "\n")).astype(np.int64)
        return {
            "lines": count,
            "line_punct_ratio": ratio(per_doc(lines.doc[ending], n), count),
            "short_line_ratio": ratio(per_doc(lines.doc[short], n), count),
            "char_dup_ratio": ratio(repeat_chars, stats.chars - breaks),
            "list_ratio": ratio(breaks, per_doc(stats.words.doc, n)),
        }

    def _stop_pattern(self) -> str:
        """RE2 pattern of a line ending in one of the stop characters (or strings)."""
        stops = self.config.stop_chars
        if stops is None:
            return re2_class(TERMINAL_PUNCTUATION) + "$"
        if not stops:
            return r"\z\A."  # no ending matches
        return "(?:" + "|".join(re.escape(stop) for stop in stops) + ")$"
