"""Unit tests of the Gopher repetition rules (operators/quality/repetition.py, ngrams.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.quality.ngrams import NGramIndex
from operators.quality.repetition import GopherRepetition, GopherRepetitionConfig
from tests.support.quality_text import piece_texts


def run(*texts: str | None, **config: object) -> dict[str, list]:
    """Columns of ``gopher_repetition`` over ``texts``, as column name -> values."""
    op = GopherRepetition(GopherRepetitionConfig(**config))
    return op(pa.table({"text": pa.array(texts, pa.string())})).to_pydict()


def distinct_lines(count: int, start: int = 0) -> list[str]:
    return [f"line number {i} here" for i in range(start, start + count)]


def test_columns_follow_the_config() -> None:
    config = GopherRepetitionConfig(top_ngram_char_frac=((2, 0.2),), dup_ngram_char_frac=())
    names = GopherRepetition.columns_written(config)
    assert "quality_repetition_top_2gram_char_frac" in names
    assert not any("dup_5gram" in name for name in names)
    defaults = GopherRepetition.columns_written(GopherRepetitionConfig())
    assert "quality_repetition_dup_10gram_char_frac_ok" in defaults
    assert defaults[-1] == "quality_repetition_pass"


@pytest.mark.parametrize(("repeats", "ok"), [(3, True), (4, False)])
def test_dup_line_frac(repeats: int, ok: bool) -> None:
    lines = distinct_lines(10 - repeats) + ["line number 0 here"] * repeats
    out = run("\n\n\n".join(lines), dup_line_char_frac=None, dup_para_char_frac=None)
    assert out["quality_repetition_dup_line_frac"] == [pytest.approx(repeats / 10)]
    assert out["quality_repetition_dup_line_frac_ok"] == [ok]
    assert out["quality_repetition_dup_para_frac_ok"] == [ok]  # one line per paragraph


def test_paragraphs_split_on_blank_lines_only() -> None:
    text = "a\nb\n\na\nb\n\nc"  # paragraphs 'a\nb', 'a\nb', 'c'
    out = run(text)
    assert out["quality_repetition_dup_para_frac"] == [pytest.approx(1 / 3)]
    assert out["quality_repetition_dup_para_char_frac"] == [pytest.approx(3 / len(text))]
    assert out["quality_repetition_dup_line_frac"] == [pytest.approx(2 / 5)]


@pytest.mark.parametrize(("filler", "ok"), [(28, True), (27, False)])
def test_dup_line_char_frac(filler: int, ok: bool) -> None:
    # The repeated line has 10 characters of 10 + 1 + 10 + 1 + filler: 0.2 with 28.
    text = "0123456789\n0123456789\n" + "z" * filler
    out = run(text)
    assert out["quality_repetition_dup_line_char_frac"] == [pytest.approx(10 / (22 + filler))]
    assert out["quality_repetition_dup_line_char_frac_ok"] == [ok]


@pytest.mark.parametrize(("padding", "ok"), [(0, True), (-1, False)])
def test_top_2gram_char_frac(padding: int, ok: bool) -> None:
    # "ab cd" (5 chars) three times = 15 chars: exactly 0.2 of 75 characters.
    text = "ab cd ab cd ab cd " + "q" * (57 + padding)
    out = run(text)
    assert out["quality_repetition_top_2gram_char_frac"] == [pytest.approx(15 / len(text))]
    assert out["quality_repetition_top_2gram_char_frac_ok"] == [ok]


def test_top_ngram_ties_go_to_the_first_seen() -> None:
    # Every 2-gram occurs once: the first one ("aaaa b") is the top one.
    out = run("aaaa b c d")
    assert out["quality_repetition_top_2gram_char_frac"] == [pytest.approx(6 / 10)]


def test_duplicated_ngrams_use_the_greedy_scan() -> None:
    words = "one two three four five".split()
    text = " ".join(words * 3)  # 15 words, 71 characters
    out = run(text)
    # Positions 5.. repeat; the scan counts the 5-grams at 5 and 10, each 19 characters.
    assert out["quality_repetition_dup_5gram_char_frac"] == [pytest.approx(38 / len(text))]
    assert out["quality_repetition_dup_5gram_char_frac_ok"] == [False]


def test_empty_text_fails_and_whitespace_passes() -> None:
    out = run("", None, "  \n ")
    assert out["quality_repetition_chars_ok"] == [False, False, True]
    assert out["quality_repetition_pass"] == [False, False, True]


def test_config_rejects_bad_ngram_limits() -> None:
    with pytest.raises(ValueError, match="once"):
        GopherRepetitionConfig(top_ngram_char_frac=((2, 0.2), (2, 0.1)))
    with pytest.raises(ValueError, match="fraction"):
        GopherRepetitionConfig(dup_ngram_char_frac=((5, 1.5),))


def naive(words: list[str], n: int) -> tuple[int, int]:
    """datatrove's definitions, written plainly: (top n-gram chars, greedy duplicate chars)."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    top = 0
    if grams:
        gram, count = Counter(grams).most_common(1)[0]
        top = len(" ".join(gram)) * count
    seen, dup, i = set(), 0, 0
    while i < len(grams):
        if grams[i] in seen:
            dup += len("".join(grams[i]))
            i += n
        else:
            seen.add(grams[i])
            i += 1
    return top, dup


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(st.lists(st.sampled_from(["a", "b", "cc", "ddd"]), max_size=30),
                     min_size=1, max_size=4))
def test_ngram_index_matches_the_plain_definitions(docs: list[list[str]]) -> None:
    vocab = {"a": 0, "b": 1, "cc": 2, "ddd": 3}
    word = np.array([vocab[w] for doc in docs for w in doc], dtype=np.int64)
    doc = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    index = NGramIndex(word, doc, np.array([1, 1, 2, 3])[word], len(docs))
    for n in range(1, 7):
        top, dup = index.top_chars(n), index.duplicate_chars(n)
        assert [naive(d, n) for d in docs] == list(zip(top.tolist(), dup.tolist()))


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(piece_texts, min_size=1, max_size=4), low=st.floats(0, 1),
       high=st.floats(0, 1))
def test_pass_flags_are_monotone_in_thresholds(texts: list[str], low: float, high: float) -> None:
    low, high = sorted((low, high))

    def config(t: float) -> dict[str, object]:
        return {"dup_line_frac": t, "dup_para_frac": t, "dup_line_char_frac": t,
                "dup_para_char_frac": t, "top_ngram_char_frac": ((2, t), (3, t)),
                "dup_ngram_char_frac": ((5, t),)}

    strict, loose = run(*texts, **config(low)), run(*texts, **config(high))
    for name in strict:
        if name.endswith(("_ok", "_pass")):
            assert all(b for a, b in zip(strict[name], loose[name]) if a), name
