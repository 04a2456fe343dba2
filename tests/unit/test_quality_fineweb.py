"""Unit tests of the FineWeb rules (operators/quality/fineweb.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.quality.fineweb import FineWebQuality, FineWebQualityConfig
from tests.support.quality_text import piece_texts

LONG = "a line that is comfortably longer than thirty characters"


def run(*texts: str | None, **config: object) -> dict[str, list]:
    """Columns of ``fineweb_quality`` over ``texts``, as column name -> values."""
    op = FineWebQuality(FineWebQualityConfig(**config))
    return op(pa.table({"text": pa.array(texts, pa.string())})).to_pydict()


def numbered(count: int, end: str = "") -> list[str]:
    return [f"{LONG} {i}{end}" for i in range(count)]


def test_columns() -> None:
    names = FineWebQuality.columns_written(FineWebQualityConfig())
    assert names[:5] == tuple(f"quality_fineweb_{n}" for n in (
        "lines", "line_punct_ratio", "short_line_ratio", "char_dup_ratio", "list_ratio"))
    assert names[-1] == "quality_fineweb_pass"


@pytest.mark.parametrize(("ending", "ok"), [(3, True), (2, False)])
def test_line_punct_ratio(ending: int, ok: bool) -> None:
    text = "\n".join(numbered(ending, ".") + numbered(25 - ending))
    out = run(text)
    assert out["quality_fineweb_line_punct_ratio"] == [pytest.approx(ending / 25)]
    assert out["quality_fineweb_line_punct_ratio_ok"] == [ok]


def test_line_punct_exclude_zero_and_stop_chars() -> None:
    text = "\n".join(numbered(10))
    assert run(text)["quality_fineweb_line_punct_ratio_ok"] == [False]
    assert run(text, line_punct_exclude_zero=True)["quality_fineweb_line_punct_ratio_ok"] == [True]
    out = run("\n".join(numbered(10, ";")), stop_chars=(";",))
    assert out["quality_fineweb_line_punct_ratio"] == [1.0]


def test_terminal_marks_of_other_scripts_and_unstripped_lines() -> None:
    out = run("\u8fd9\u662f\u53e5\u5b50\u3002\n\u0647\u0630\u0627\u061f\nends. \nends.\r\nends!")
    assert out["quality_fineweb_line_punct_ratio"] == [pytest.approx(3 / 5)]


@pytest.mark.parametrize(("short", "ok"), [(67, True), (68, False)])
def test_short_line_ratio(short: int, ok: bool) -> None:
    lines = [f"{i:030d}" for i in range(short)] + numbered(100 - short, ".")  # 30 chars: short
    out = run("\n".join(lines))
    assert out["quality_fineweb_short_line_ratio"] == [pytest.approx(short / 100)]
    assert out["quality_fineweb_short_line_ratio_ok"] == [ok]


def test_a_31_character_line_is_not_short() -> None:
    assert run("x" * 31)["quality_fineweb_short_line_ratio"] == [0.0]


@pytest.mark.parametrize(("length", "ok"), [(10, True), (11, False)])
def test_char_dup_ratio(length: int, ok: bool) -> None:
    # A repeated line of `length` chars, in 1000 characters without line breaks.
    line = "r" * length
    text = "\n".join([line, line, "z" * (1000 - 2 * length)])
    out = run(text)
    assert out["quality_fineweb_char_dup_ratio"] == [pytest.approx(length / 1000)]
    assert out["quality_fineweb_char_dup_ratio_ok"] == [ok]


@pytest.mark.parametrize(("breaks", "ok"), [(3, True), (4, False)])
def test_list_ratio(breaks: int, ok: bool) -> None:
    words = ["word"] * 10
    for i in range(breaks):
        words[i] += "\n"
    out = run(" ".join(words))
    assert out["quality_fineweb_list_ratio"] == [pytest.approx(breaks / 10)]
    assert out["quality_fineweb_list_ratio_ok"] == [ok]


@pytest.mark.parametrize("text", ["", None, " \n \t\n"])
def test_documents_without_lines_fail(text: str | None) -> None:
    out = run(text)
    assert out["quality_fineweb_lines"] == [0]
    assert out["quality_fineweb_pass"] == [False]


def test_a_clean_document_passes() -> None:
    assert run("\n".join(numbered(20, ".")))["quality_fineweb_pass"] == [True]


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(piece_texts, min_size=1, max_size=4), low=st.floats(0, 1),
       high=st.floats(0, 1))
def test_pass_flags_are_monotone_in_thresholds(texts: list[str], low: float, high: float) -> None:
    low, high = sorted((low, high))
    strict = run(*texts, line_punct_thr=high, short_line_thr=low, char_duplicates_ratio=low,
                 new_line_ratio=low)
    loose = run(*texts, line_punct_thr=low, short_line_thr=high, char_duplicates_ratio=high,
                new_line_ratio=high)
    for name in strict:
        if name.endswith(("_ok", "_pass")):
            assert all(b for a, b in zip(strict[name], loose[name]) if a), name
