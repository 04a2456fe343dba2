"""Hypothesis strategies of texts for the quality rule families' property tests."""

from __future__ import annotations

from hypothesis import strategies as st

PIECES = ["a", "bc", "the", "and", "of", "42", " ", " ", "  ", "\t", "\n", "\n\n", "\r\n",
          ".", ",", "!", "?", "...", "\u2026", "#", "-", "\u2022", "(", ")", "{", "'s", "n't",
          "don't", "e.g.", "http://a.io/x", "lorem ipsum", "javascript", "\u3002", "\u65e5\u672c",
          "\u0416", "\U0001f600", "\u0301", "[1]", "\u2028", "\x0b", "\x1c", "\xa0"]

piece_texts = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
"""Texts assembled from pieces that exercise the rules (words, lines, marks, scripts)."""

any_texts = st.text(st.characters(codec="utf-8"), max_size=60)
"""Arbitrary Unicode text (every code point UTF-8 can carry)."""

texts = st.one_of(piece_texts, any_texts)
"""Either kind."""
