"""Unit tests of the generic quality signals (operators/quality/heuristics.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from operators.quality.heuristics import SCHEMA, Heuristics, HeuristicsConfig


def run(*texts: str | None) -> dict[str, list]:
    """Signals of ``texts``, as column name -> values."""
    batch = pa.table({"id": list(range(len(texts))), "text": pa.array(texts, pa.string())})
    return Heuristics(HeuristicsConfig())(batch).to_pydict()


def test_registered_with_declared_columns() -> None:
    assert Heuristics.name == "heuristics"
    assert Heuristics.version == 1
    assert Heuristics.columns_read(HeuristicsConfig()) == ("text",)
    assert Heuristics.columns_written(HeuristicsConfig()) == tuple(SCHEMA.names)


def test_word_count_splits_on_any_whitespace() -> None:
    out = run("one two  three\tfour\nfive\u00a0six ", "  lone  ")
    assert out["quality_word_count"] == [6, 1]


def test_mean_word_length_counts_code_points() -> None:
    out = run("ab abcd", "\u00e9t\u00e9 \u65e5\u672c\u8a9e")  # "été 日本語": 3 and 3 characters
    assert out["quality_mean_word_length"] == pytest.approx([3.0, 3.0])


def test_alpha_word_ratio() -> None:
    out = run("hello 123 a1 -- !!", "\u65e5\u672c 42")
    assert out["quality_alpha_word_ratio"] == pytest.approx([2 / 5, 1 / 2])


def test_symbol_word_ratio_counts_hashes_and_ellipses() -> None:
    # '#' x3 ("#tag", "##"), "..." x1, "\u2026" x1 over 5 words.
    out = run("#tag ## wait... so\u2026 end", "no symbols here")
    assert out["quality_symbol_word_ratio"] == pytest.approx([5 / 5, 0.0])


def test_line_count_ignores_blank_lines() -> None:
    out = run("a\n\n  \nb\r\nc\n", "single line")
    assert out["quality_line_count"] == [3, 1]


def test_duplicate_line_fraction() -> None:
    # Lines a, b, a, a, " b " (trimmed to b): three repeat an earlier line.
    out = run("a\nb\na\n\na\n b \n", "x\ny", "same\nsame")
    assert out["quality_duplicate_line_fraction"] == pytest.approx([3 / 5, 0.0, 1 / 2])


def test_duplicate_lines_are_per_document() -> None:
    out = run("shared line", "shared line")
    assert out["quality_duplicate_line_fraction"] == [0.0, 0.0]


def test_bullet_line_ratio() -> None:
    text = "- dash\n* star\n  \u2022 dot\n\u2023 tri\n\u25e6 ring\nplain\n+ plus"
    out = run(text)
    assert out["quality_bullet_line_ratio"] == pytest.approx([5 / 7])


def test_non_ascii_ratio_counts_code_points() -> None:
    out = run("abc\u00e9", "\U0001f600\u65e5", "ascii")
    assert out["quality_non_ascii_ratio"] == pytest.approx([1 / 4, 1.0, 0.0])


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n", None])
def test_empty_and_whitespace_text_gives_zeros(text: str | None) -> None:
    out = run(text)
    for name in SCHEMA.names:
        assert out[name] == [0], name


def test_empty_batch_keeps_schema() -> None:
    batch = pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())})
    out = Heuristics(HeuristicsConfig())(batch)
    assert out.num_rows == 0
    for field in SCHEMA:
        assert out.schema.field(field.name).type == field.type


def test_output_types_and_input_columns_kept() -> None:
    batch = pa.table({"id": [7], "text": ["hi there"], "source": ["web"]})
    out = Heuristics(HeuristicsConfig())(batch)
    assert out.column_names[:3] == ["id", "text", "source"]
    assert out.select(SCHEMA.names).schema == SCHEMA


def test_rerun_replaces_columns() -> None:
    op = Heuristics(HeuristicsConfig())
    once = op(pa.table({"text": ["a b c", "d"]}))
    twice = op(once)
    assert twice.column_names == once.column_names
    assert twice.equals(once)


def test_chunked_input_matches_contiguous() -> None:
    texts = ["a a\na", "", "x\u2026 #", "- b\n- b"]
    op = Heuristics(HeuristicsConfig())
    contiguous = op(pa.table({"text": texts}))
    chunked = op(pa.table({"text": pa.chunked_array([texts[:1], [], texts[1:3], texts[3:]])}))
    assert chunked.to_pydict() == contiguous.to_pydict()


def test_large_string_text() -> None:
    out = Heuristics(HeuristicsConfig())(pa.table({"text": pa.array(["a bb"], pa.large_string())}))
    assert out["quality_word_count"].to_pylist() == [2]
    assert out["quality_mean_word_length"].to_pylist() == [1.5]
