"""Cheap per-document quality signals, one column each.

These are the shared building blocks of the published heuristic filters (Gopher, C4,
FineWeb); the full rule families with their thresholds live in their own modules. Nothing
here drops a row: a later ``filter`` stage turns the signals into drop reasons.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import MapOperator, OperatorConfig, set_column
from operators.registry import register

logger = logging.getLogger(__name__)

WORD_COUNT = "quality_word_count"
MEAN_WORD_LENGTH = "quality_mean_word_length"
ALPHA_WORD_RATIO = "quality_alpha_word_ratio"
SYMBOL_WORD_RATIO = "quality_symbol_word_ratio"
LINE_COUNT = "quality_line_count"
DUPLICATE_LINE_FRACTION = "quality_duplicate_line_fraction"
BULLET_LINE_RATIO = "quality_bullet_line_ratio"
NON_ASCII_RATIO = "quality_non_ascii_ratio"

SCHEMA = pa.schema(
    [
        (WORD_COUNT, pa.int64()),
        (MEAN_WORD_LENGTH, pa.float64()),
        (ALPHA_WORD_RATIO, pa.float64()),
        (SYMBOL_WORD_RATIO, pa.float64()),
        (LINE_COUNT, pa.int64()),
        (DUPLICATE_LINE_FRACTION, pa.float64()),
        (BULLET_LINE_RATIO, pa.float64()),
        (NON_ASCII_RATIO, pa.float64()),
    ]
)
"""Columns written, in order, with their types."""

_ALPHA = r"\p{L}"  # any Unicode letter, as Python's str.isalpha
_BULLET = r"^[-*\x{2022}\x{2023}\x{25E6}]"  # - * • ‣ ◦ (lines are already left-trimmed)
_NON_ASCII = r"[^\x00-\x7F]"
_SYMBOLS = ("#", "...", "\u2026")  # hash, three-dot ellipsis, ellipsis character


class HeuristicsConfig(OperatorConfig):
    """The signals have no knobs; thresholds belong to the ``filter`` stage that reads them."""


def _per_doc_sum(parents: np.ndarray, weights: np.ndarray | None, num_docs: int) -> np.ndarray:
    """Sum ``weights`` (or count items when None) per document index in ``parents``."""
    return np.bincount(parents, weights=weights, minlength=num_docs).astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with 0 where the denominator is 0."""
    out = np.zeros(len(numerator), dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _word_signals(text: pa.Array, num_docs: int) -> dict[str, np.ndarray]:
    """Word count, mean word length, alphabetic-word and symbol ratios of each document."""
    words = pc.utf8_split_whitespace(text)
    flat = pc.list_flatten(words)
    parents = pc.list_parent_indices(words).to_numpy()
    lengths = pc.utf8_length(flat).to_numpy(zero_copy_only=False)
    # Leading and trailing whitespace yields empty tokens; they are not words.
    is_word = lengths > 0
    parents, lengths = parents[is_word], lengths[is_word]
    has_alpha = pc.match_substring_regex(flat, _ALPHA).to_numpy(zero_copy_only=False)[is_word]

    word_count = _per_doc_sum(parents, None, num_docs)
    char_count = _per_doc_sum(parents, lengths.astype(np.float64), num_docs)
    alpha_count = _per_doc_sum(parents, has_alpha.astype(np.float64), num_docs)
    symbols = np.zeros(num_docs, dtype=np.float64)
    for symbol in _SYMBOLS:
        symbols += pc.count_substring(text, symbol).to_numpy(zero_copy_only=False)
    return {
        WORD_COUNT: word_count.astype(np.int64),
        MEAN_WORD_LENGTH: _ratio(char_count, word_count),
        ALPHA_WORD_RATIO: _ratio(alpha_count, word_count),
        SYMBOL_WORD_RATIO: _ratio(symbols, word_count),
    }


def _line_signals(text: pa.Array, num_docs: int) -> dict[str, np.ndarray]:
    """Non-empty line count, duplicate-line fraction and bullet-line ratio of each document."""
    lines = pc.split_pattern(text, "\n")
    parents = pc.list_parent_indices(lines)
    # Trimming also removes the '\r' of CRLF text, so "a\r\n" and "a\n" lines compare equal.
    trimmed = pc.utf8_trim_whitespace(pc.list_flatten(lines))
    non_empty = pc.greater(pc.utf8_length(trimmed), 0)
    kept = pa.table({"doc": parents, "line": trimmed}).filter(non_empty)

    doc = kept["doc"].to_numpy()
    line_count = _per_doc_sum(doc, None, num_docs)
    # Every line beyond the first copy of its (document, text) pair is a duplicate.
    distinct = kept.group_by(["doc", "line"]).aggregate([])["doc"].to_numpy()
    duplicates = line_count - _per_doc_sum(distinct, None, num_docs)
    bullet = pc.match_substring_regex(kept["line"], _BULLET).to_numpy()
    bullets = _per_doc_sum(doc, bullet.astype(np.float64), num_docs)
    return {
        LINE_COUNT: line_count.astype(np.int64),
        DUPLICATE_LINE_FRACTION: _ratio(duplicates, line_count),
        BULLET_LINE_RATIO: _ratio(bullets, line_count),
    }


def _char_signals(text: pa.Array) -> dict[str, np.ndarray]:
    """Fraction of non-ASCII code points of each document."""
    chars = pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.float64)
    non_ascii = pc.count_substring_regex(text, _NON_ASCII).to_numpy(zero_copy_only=False)
    return {NON_ASCII_RATIO: _ratio(non_ascii.astype(np.float64), chars)}


def compute_signals(text: pa.Array) -> dict[str, np.ndarray]:
    """Every signal of :data:`SCHEMA` for one contiguous string array.

    Args:
        text: Document texts (``string`` or ``large_string``); nulls count as empty text.

    Returns:
        Column name -> one value per document, in :data:`SCHEMA` order and dtype.
    """
    text = pc.fill_null(text, "")
    num_docs = len(text)
    signals = {**_word_signals(text, num_docs), **_line_signals(text, num_docs)}
    signals.update(_char_signals(text))
    return {field.name: signals[field.name] for field in SCHEMA}


@register("heuristics")
class Heuristics(MapOperator[HeuristicsConfig]):
    """Generic document-quality signals, one column per signal (no rows are dropped).

    Algorithm, per document (``text``; a null text counts as empty):

    * Words are the non-empty tokens of a split on Unicode whitespace.
      ``quality_word_count`` counts them; ``quality_mean_word_length`` is the mean number of
      code points per word; ``quality_alpha_word_ratio`` is the fraction of words holding at
      least one Unicode letter; ``quality_symbol_word_ratio`` is the number of ``#``, ``...``
      and ``\u2026`` occurrences (non-overlapping, summed) per word. These follow Gopher's
      rules (Rae et al. 2021, "Scaling Language Models", appendix A, table A1), which
      combine the hash and ellipsis ratios into one here.
    * Lines are the pieces of a split on ``\\n``, trimmed of surrounding whitespace; blank
      lines are ignored. ``quality_line_count`` counts the rest;
      ``quality_duplicate_line_fraction`` is the fraction of them whose trimmed text equals
      an earlier line of the same document (Gopher's duplicate-line fraction, also used by
      C4, Raffel et al. 2020, and FineWeb, Penedo et al. 2024);
      ``quality_bullet_line_ratio`` is the fraction starting with ``-``, ``*``, ``\u2022``,
      ``\u2023`` or ``\u25e6`` (Gopher's bullet-point rule).
    * ``quality_non_ascii_ratio`` is the fraction of code points above U+007F.

    Every ratio is 0 when its denominator (words, lines or characters) is 0.

    Reads: text. Writes: the eight columns of :data:`SCHEMA` (counts int64, the rest
    float64), replacing them when present, so re-running is idempotent.
    Drop reasons: none. Deterministic; no state beyond the (empty) config.
    """

    keeps_rows = True
    version = 1
    Config = HeuristicsConfig
    reads = ("text",)
    writes = tuple(SCHEMA.names)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Append (or replace) the signal columns of every row of ``batch``."""
        chunks = batch["text"].chunks
        per_chunk = [compute_signals(chunk) for chunk in chunks if len(chunk)]
        for field in SCHEMA:
            parts = [signals[field.name] for signals in per_chunk]
            values = np.concatenate(parts) if parts else []
            batch = set_column(batch, field.name, pa.array(values, type=field.type))
        return batch
