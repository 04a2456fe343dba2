"""Unit tests of the C4 rules (operators/quality/c4.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.quality.c4 import C4LineRules, C4Quality, C4QualityConfig
from tests.support.quality_text import piece_texts

SENTENCE = "This line is kept."


def run(*texts: str | None, **config: object) -> dict[str, list]:
    """Columns of ``c4_quality`` over ``texts``, as column name -> values."""
    op = C4Quality(C4QualityConfig(**config))
    return op(pa.table({"text": pa.array(texts, pa.string())})).to_pydict()


def test_columns() -> None:
    names = C4Quality.columns_written(C4QualityConfig())
    assert names == tuple(f"quality_c4_{n}" for n in (
        "num_sentences", "lorem_ipsum", "curly_bracket", "line_count", "kept_lines",
        "kept_chars", "num_sentences_ok", "lorem_ipsum_ok", "curly_bracket_ok", "pass"))


@pytest.mark.parametrize(("lines", "ok"), [(5, True), (4, False)])
def test_min_num_sentences(lines: int, ok: bool) -> None:
    out = run("\n".join([SENTENCE] * lines))
    assert out["quality_c4_num_sentences"] == [lines]
    assert out["quality_c4_num_sentences_ok"] == [ok]
    assert out["quality_c4_pass"] == [ok]


def test_sentences_are_counted_within_kept_lines() -> None:
    # spaCy's sentencizer (datatrove's split_into_sentences) gives 6: a mark ends a
    # sentence at the next word that is not punctuation; "e.g." and "Mr." are words.
    out = run("One is here. Two is here! Three? (Four is here.) e.g. not five. Mr. Smith too.")
    assert out["quality_c4_num_sentences"] == [6]


@pytest.mark.parametrize(("line", "kept"), [
    ("Ends with a period.", True),
    ('Ends with a quote "', True),
    ("Ends with a question?", True),
    ("No terminal punctuation", False),
    ("Trails off...", False),
    ("Too short.", False),  # two words
    ("Enable JavaScript to continue.", False),
    ("Read our Privacy Policy today.", False),
    ("A " + "x" * 1001 + " word.", False),
    ("A " + "x" * 1000 + " word.", True),
    ("Cited claim here.[12]", True),  # the citation is removed before the end test
    ("Cited claim here. [edit]", False),  # removal leaves a trailing space
])
def test_line_rules(line: str, kept: bool) -> None:
    out = run(line)
    assert out["quality_c4_kept_lines"] == [int(kept)]
    assert out["quality_c4_line_count"] == [1]


def test_kept_chars_measure_the_rewritten_text() -> None:
    out = run("  Keep this one.  \nDrop this\nCited claim here.[1]")
    assert out["quality_c4_kept_chars"] == [len("Keep this one.\nCited claim here.")]
    assert out["quality_c4_num_sentences"] == [2]


def test_lorem_ipsum_drops_only_from_a_line_that_reaches_the_test() -> None:
    kept = run("\n".join([SENTENCE] * 5 + ["Lorem ipsum dolor sit."]))
    removed_first = run("\n".join([SENTENCE] * 5 + ["Lorem ipsum dolor sit"]))
    assert kept["quality_c4_lorem_ipsum"] == [1] and kept["quality_c4_pass"] == [False]
    assert removed_first["quality_c4_lorem_ipsum"] == [0]
    assert removed_first["quality_c4_pass"] == [True]


def test_curly_bracket_drops_unless_the_line_went_for_javascript() -> None:
    body = [SENTENCE] * 5
    out = run("\n".join(body + ["if (x) { y } is code."]),
              "\n".join(body + ["javascript: if (x) { y }."]),
              "\n".join(body + ["if (x) { y } is code."]))
    assert out["quality_c4_curly_bracket"] == [1, 0, 1]
    assert out["quality_c4_pass"] == [False, True, False]
    off = run("\n".join(body + ["if (x) { y } is code."]), curly_bracket=False)
    assert off["quality_c4_curly_bracket_ok"] == [True] and off["quality_c4_pass"] == [True]


def test_line_rules_can_be_switched_off() -> None:
    rules = C4LineRules(terminal_punctuation=False, min_words=None, javascript=False)
    out = run("no punctuation\nshort\njavascript is fine", lines=rules, min_num_sentences=3)
    assert out["quality_c4_kept_lines"] == [3]
    assert out["quality_c4_num_sentences"] == [3]
    assert out["quality_c4_pass"] == [True]


@pytest.mark.parametrize("text", ["", None, "   ", "\n\r\n", "{", "\u2028."])
def test_degenerate_texts(text: str | None) -> None:
    out = run(text)
    assert out["quality_c4_num_sentences"] == [0]
    assert out["quality_c4_pass"] == [False]


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(piece_texts, min_size=1, max_size=4), low=st.integers(0, 6),
       high=st.integers(0, 6))
def test_pass_flags_are_monotone_in_thresholds(texts: list[str], low: int, high: int) -> None:
    low, high = sorted((low, high))
    strict = run(*texts, min_num_sentences=high)
    loose = run(*texts, min_num_sentences=low)
    assert all(b for a, b in zip(strict["quality_c4_pass"], loose["quality_c4_pass"]) if a)
