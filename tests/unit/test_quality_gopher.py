"""Unit tests of the Gopher quality rules (operators/quality/gopher.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.quality.gopher import GopherQuality, GopherQualityConfig
from operators.quality.scoring import Bounds
from tests.support.quality_text import piece_texts

FILLER = "lorem"  # a plain 5-letter word, not a stop word


def run(*texts: str | None, **config: object) -> dict[str, list]:
    """Columns of ``gopher_quality`` over ``texts``, as column name -> values."""
    op = GopherQuality(GopherQualityConfig(**config))
    return op(pa.table({"text": pa.array(texts, pa.string())})).to_pydict()


def words(count: int, word: str = FILLER) -> str:
    return " ".join([word] * count)


def test_columns_and_types() -> None:
    out = GopherQuality(GopherQualityConfig())(pa.table({"id": [1], "text": ["a b"]}))
    names = GopherQuality.columns_written(GopherQualityConfig())
    assert out.column_names == ["id", "text", *names]
    assert names[-1] == "quality_gopher_pass"
    assert out.schema.field("quality_gopher_word_count").type == pa.int64()
    assert out.schema.field("quality_gopher_alpha_word_ratio").type == pa.float64()
    assert out.schema.field("quality_gopher_stop_words_ok").type == pa.bool_()


@pytest.mark.parametrize(("count", "ok"), [(50, True), (49, False)])
def test_word_count_minimum(count: int, ok: bool) -> None:
    out = run(words(count))
    assert out["quality_gopher_word_count"] == [count]
    assert out["quality_gopher_word_count_ok"] == [ok]


def test_word_count_maximum_and_symbol_words() -> None:
    # '...' and '!!' are symbol words: they count for ratios, not for the word count.
    out = run(words(5) + " ... !!", words(6), word_count=Bounds(min=1, max=5))
    assert out["quality_gopher_word_count"] == [5, 6]
    assert out["quality_gopher_word_count_ok"] == [True, False]


@pytest.mark.parametrize(("text", "mean", "ok"), [
    (words(50, "abc"), 3.0, True),
    (words(49, "abc") + " ab", 2.98, False),
    (words(50, "abcdefghij"), 10.0, True),
    (words(49, "abcdefghij") + " abcdefghijk", 10.02, False),
])
def test_mean_word_length_bounds(text: str, mean: float, ok: bool) -> None:
    out = run(text)
    assert out["quality_gopher_mean_word_length"] == [pytest.approx(mean)]
    assert out["quality_gopher_mean_word_length_ok"] == [ok]


@pytest.mark.parametrize(("hashes", "ok"), [(10, True), (11, False)])
def test_hash_ratio(hashes: int, ok: bool) -> None:
    # Each '#x' is two words ('#', 'x'): 100 words in all either way.
    out = run(words(100 - 2 * hashes) + " #x" * hashes)
    assert out["quality_gopher_hash_ratio"] == [pytest.approx(hashes / 100)]
    assert out["quality_gopher_hash_ratio_ok"] == [ok]


@pytest.mark.parametrize(("ellipses", "ok"), [(10, True), (11, False)])
def test_ellipsis_ratio_counts_both_spellings(ellipses: int, ok: bool) -> None:
    marks = ["...", "\u2026"] * ellipses
    body = " ".join(f"x{mark}" for mark in marks[:ellipses])  # 'x...': words 'x' and '...'
    out = run(words(100 - 2 * ellipses) + " " + body)
    assert out["quality_gopher_ellipsis_ratio"] == [pytest.approx(ellipses / 100)]
    assert out["quality_gopher_ellipsis_ratio_ok"] == [ok]


@pytest.mark.parametrize(("bullets", "ok"), [(9, True), (10, False)])
def test_bullet_line_ratio(bullets: int, ok: bool) -> None:
    lines = ["  \u2022 item" if i % 2 else "- item" for i in range(bullets)]
    lines += ["plain"] * (10 - bullets)
    out = run("\n".join(lines))
    assert out["quality_gopher_bullet_line_ratio"] == [pytest.approx(bullets / 10)]
    assert out["quality_gopher_bullet_line_ratio_ok"] == [ok]


@pytest.mark.parametrize(("trailing", "ok"), [(3, True), (4, False)])
def test_ellipsis_line_ratio_counts_blank_lines(trailing: int, ok: bool) -> None:
    lines = ["and so on...  "] * (trailing - 1) + ["wait\u2026"] + [""] * 2
    lines += ["done."] * (10 - trailing - 2)
    out = run("\n".join(lines))  # ten lines, two of them blank
    assert out["quality_gopher_ellipsis_line_ratio"] == [pytest.approx(trailing / 10)]
    assert out["quality_gopher_ellipsis_line_ratio_ok"] == [ok]


@pytest.mark.parametrize(("numbers", "ok"), [(2, True), (3, False)])
def test_alpha_word_ratio(numbers: int, ok: bool) -> None:
    out = run(words(10 - numbers) + " 42" * numbers)
    assert out["quality_gopher_alpha_word_ratio"] == [pytest.approx((10 - numbers) / 10)]
    assert out["quality_gopher_alpha_word_ratio_ok"] == [ok]


def test_punctuation_marks_are_words_of_their_own() -> None:
    out = run("Hello, world. Fine!")  # Hello , world . Fine !
    assert out["quality_gopher_alpha_word_ratio"] == [pytest.approx(3 / 6)]
    assert out["quality_gopher_word_count"] == [3]


@pytest.mark.parametrize(("text", "count"), [
    ("the cat and the dog", 2),
    ("the the the", 1),
    ("The And THE", 0),  # case-sensitive, like datatrove
    ("(the) that's", 2),  # punctuation and "'s" are split off
])
def test_stop_words_are_distinct_whole_words(text: str, count: int) -> None:
    out = run(text)
    assert out["quality_gopher_stop_words"] == [count]
    assert out["quality_gopher_stop_words_ok"] == [count >= 2]


def test_pass_needs_every_rule_and_none_switches_a_rule_off() -> None:
    good = " ".join(["the quick brown fox jumps over the lazy dog and runs away"] * 5)
    out = run(good, good + " 7" * 20)
    assert out["quality_gopher_pass"] == [True, False]
    off = run(good + " 7" * 20, min_alpha_word_ratio=None)
    assert off["quality_gopher_alpha_word_ratio_ok"] == [True]
    assert off["quality_gopher_pass"] == [True]


@pytest.mark.parametrize("text", ["", "   ", "\n\n", None, "\u2026", "#"])
def test_degenerate_texts_fail_without_raising(text: str | None) -> None:
    out = run(text)
    assert out["quality_gopher_word_count"] == [0]
    assert out["quality_gopher_pass"] == [False]


def test_empty_batch_and_rerun() -> None:
    op = GopherQuality(GopherQualityConfig())
    empty = op(pa.table({"text": pa.array([], pa.string())}))
    assert empty.num_rows == 0 and "quality_gopher_pass" in empty.column_names
    once = op(pa.table({"text": ["the cat and the hat", "x"]}))
    assert op(once).equals(once)


def test_config_rejects_inverted_bounds() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        GopherQualityConfig(word_count=Bounds(min=10, max=5))


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(piece_texts, min_size=1, max_size=4), low=st.floats(0, 1), high=st.floats(0, 1))
def test_pass_flags_are_monotone_in_thresholds(texts: list[str], low: float, high: float) -> None:
    low, high = sorted((low, high))
    strict = run(*texts, max_symbol_word_ratio=low, max_bullet_line_ratio=low,
                 max_ellipsis_line_ratio=low, min_alpha_word_ratio=high, min_stop_words=2)
    loose = run(*texts, max_symbol_word_ratio=high, max_bullet_line_ratio=high,
                max_ellipsis_line_ratio=high, min_alpha_word_ratio=low, min_stop_words=1)
    for name in strict:
        if name.endswith(("_ok", "_pass")):
            assert all(b for a, b in zip(strict[name], loose[name]) if a), name
