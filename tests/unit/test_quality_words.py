"""Unit tests of the shared text structure of the quality families: words, lines, chunks,
and the properties every family keeps (never raises, deterministic, batch-independent)."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.quality.c4 import C4Quality, C4QualityConfig
from operators.quality.charsets import WHITESPACE
from operators.quality.fineweb import FineWebQuality, FineWebQualityConfig
from operators.quality.gopher import GopherQuality, GopherQualityConfig
from operators.quality.repetition import GopherRepetition, GopherRepetitionConfig
from operators.quality.grouping import group_pairs
from operators.quality.text_stats import TextStats, text_stats
from operators.quality.words import split_chunk, split_words
from tests.support.quality_text import any_texts, texts

# Expected tokens as spaCy 3.8's English tokenizer gives them (datatrove 0.10.1's words).
SPACY = {
    "Hello,": ("Hello", ","), "don't.": ("do", "n't", "."), "can't": ("ca", "n't"),
    "cannot": ("can", "not"), "(e.g.": ("(", "e.g."), "e.g.,": ("e.g.", ","),
    "U.S.": ("U.S.",), "USA.": ("USA", "."), "J.": ("J.",), "x.": ("x.",), "etc.": ("etc", "."),
    "foo-bar": ("foo", "-", "bar"), "1-2": ("1", "-", "2"), "a--b": ("a", "--", "b"),
    "-v": ("-v",), "--help": ("--help",), "x=1": ("x=1",), "a/b": ("a", "/", "b"),
    "1/2": ("1/2",), "foo:bar": ("foo", ":", "bar"), "os.path.": ("os.path", "."),
    "www.example.com/a?b=1": ("www.example.com/a?b=1",), "http://x.y/z": ("http://x.y", "/", "z"),
    "foo.Bar": ("foo", ".", "Bar"), "5km.": ("5", "km", "."), "50%": ("50", "%"),
    "US$5": ("US$", "5"), "$x": ("$", "x"), "+5": ("+5",), "+foo": ("+", "foo"),
    "3+4": ("3", "+", "4"), "#1": ("#", "1"), "__init__": ("_", "_", "init", "_", "_"),
    "foo(bar)": ("foo(bar", ")"), "value):": ("value", "):"), "...foo...": ("...", "foo", "..."),
    "a...b": ("a", "...", "b"), "\u201cHello,\u201d": ("\u201c", "Hello", ",", "\u201d"),
    "50\u00b0C.": ("50", "\u00b0", "C", "."), "\u65e5\u672c\u8a9e\u3002": ("\u65e5\u672c\u8a9e", "\u3002"),
    "Straße.": ("Straße", "."), "5am": ("5", "am"), "It's": ("It", "'s"), ":)": (":)",),
    "<p>": ("<", "p", ">"), "std::vector<int>": ("std::vector", "<", "int", ">"),
}


@pytest.mark.parametrize(("chunk", "tokens"), list(SPACY.items()))
def test_split_chunk_matches_spacy(chunk: str, tokens: tuple[str, ...]) -> None:
    assert split_chunk(chunk) == tokens


def test_split_words_drops_whitespace() -> None:
    assert split_words(" Hi there,\tfriend.\n") == ["Hi", "there", ",", "friend", "."]


def test_whitespace_constant_is_str_isspace() -> None:
    assert set(WHITESPACE) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


@settings(max_examples=80, deadline=None)
@given(batch=st.lists(texts, min_size=1, max_size=5))
def test_lines_chunks_and_words_match_python(batch: list[str]) -> None:
    stats = TextStats(pa.array(batch))
    lines = stats.lines.text.to_pylist()
    assert lines == [line for text in batch for line in text.splitlines()]
    assert stats.line_chunks.text.to_pylist() == [c for line in lines for c in line.split()]
    words = stats.words.vocab.take(pa.array(stats.words.token, pa.int64())).to_pylist()
    assert words == [w for text in batch for w in split_words(text)]
    assert stats.words.doc.tolist() == [i for i, t in enumerate(batch) for _ in split_words(t)]
    assert stats.chars.tolist() == [len(t) for t in batch]


@settings(max_examples=60, deadline=None)
@given(any_texts)
def test_split_chunk_concatenates_back(text: str) -> None:
    for chunk in text.split():
        tokens = split_chunk(chunk)
        assert "".join(tokens) == chunk and all(tokens)


def test_group_pairs_is_exact_in_both_paths() -> None:
    major = np.array([3, 1, 3, 1, 2**40, 2**40])
    minor = np.array([7, 7, 7, 8, 1, 1])
    for scale in (1, 2**20):  # 2**20 forces the lexsort fallback (pairs too wide to pack)
        groups = group_pairs(major * scale, minor)
        assert groups.first.tolist() == [True, True, False, True, True, False]
        assert groups.size[groups.number].tolist() == [2, 1, 2, 1, 2, 2]


def test_text_stats_is_shared_for_the_same_array_only() -> None:
    array = pa.array(["a b", "c"])
    assert text_stats(array) is text_stats(array)
    assert text_stats(pa.array(["a b", "c"])) is not text_stats(array)


FAMILIES = [(GopherQuality, GopherQualityConfig), (GopherRepetition, GopherRepetitionConfig),
            (C4Quality, C4QualityConfig), (FineWebQuality, FineWebQualityConfig)]


def score_all(column: pa.Array | pa.ChunkedArray) -> pa.Table:
    table = pa.table({"text": column})
    for op, config in FAMILIES:
        table = op(config())(table)
    return table


@settings(max_examples=40, deadline=None)
@given(batch=st.lists(texts, min_size=1, max_size=5))
def test_any_unicode_scores_deterministically_whatever_the_batching(batch: list[str]) -> None:
    whole = score_all(pa.array(batch))
    assert score_all(pa.array(batch)).equals(whole)
    one_by_one = pa.concat_tables([score_all(pa.array([t])) for t in batch])
    assert one_by_one.equals(whole)
    chunked = score_all(pa.chunked_array([batch[:1], batch[1:]], pa.string()))
    assert chunked.equals(whole)


def test_large_strings_nulls_and_a_megabyte_line() -> None:
    huge = ("word " * 200_000)[:1_000_000]
    column = pa.array([None, "", huge, "\u2028" * 5, "(" * 5000 + "x"], pa.large_string())
    out = score_all(column)
    assert out.num_rows == 5
    # Overlapping n-grams: "word word" (9 chars) about 200,000 times over 1e6 characters.
    assert out["quality_repetition_top_2gram_char_frac"][2].as_py() == pytest.approx(1.8, 0.01)
