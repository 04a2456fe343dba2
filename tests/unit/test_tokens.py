"""Unit tests of the byte-level normalization (operators/dedup/tokens.py, code_points.py) and
of the fast scheme's word and window hashes (operators/dedup/shingle_hash.py)."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.dedup.code_points import (
    LOWER_CHANGES,
    NFKC_UNSAFE,
    SEPARATOR,
    SEPARATOR_RUN,
    TRIMMED,
    code_point_classes,
    decode,
)
from operators.dedup.shingle_hash import window_hashes, word_hashes
from operators.dedup.shingling import normalize_for_near_dup
from operators.dedup.tokens import token_spans
from tests.unit.test_shingling import CORPUS

# Code points that exercise every rule: separators of all kinds, the trimmed information
# separators, controls, NFKC compatibility forms and compositions, combining marks out of
# order, Hangul jamo, non-ASCII uppercase and digits, 4-byte UTF-8.
TRICKY = list("aZ09 .,-_\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x00\x7f\x85\xa0") + [
    "é", "É", "ﬁ", "Ａ", "１", "\u3000", "\u2028", "’", "—", "…", "٣", "१", "𝟙", "🎉", "İ", "Ⱥ",
    "\u212a", "\u0301", "e\u0301", "a\u0316\u0301", "a\u0301\u0316", "ß", "ǅ", "\u200b", "\ufeff", "日", "한",
    "\u1100\u1161", "\u1100\u1161\u11a8", "ৌ", "\u09c7\u09be", "Ω", "ϴ", "µ", "\u0345", "ﷺ",
]


def regex_normalize(texts: list[str | None], map_digits: bool) -> list[str | None]:
    """The former implementation: Arrow's NFKC (gated by Python), lowercase, regexes, trim."""
    needs = pa.array([s is not None and not unicodedata.is_normalized("NFKC", s) for s in texts], pa.bool_())
    text = pa.array(texts, pa.string())
    if pc.any(needs).as_py():
        text = pc.replace_with_mask(text, needs, pc.utf8_normalize(text.filter(needs), form="NFKC"))
    text = pc.utf8_lower(text)
    if map_digits:
        text = pc.replace_substring_regex(text, pattern=r"\p{Nd}", replacement="0")
    text = pc.replace_substring_regex(text, pattern=SEPARATOR_RUN, replacement=" ")
    return pc.utf8_trim_whitespace(text).to_pylist()


tricky_texts = st.lists(st.sampled_from(TRICKY), max_size=40).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(texts=st.lists(st.one_of(tricky_texts, st.none(), st.text(max_size=30)), max_size=8),
       map_digits=st.booleans())
def test_normalization_equals_the_regex_pipeline(texts: list[str | None], map_digits: bool) -> None:
    ours = normalize_for_near_dup(pa.array(texts, pa.string()), map_digits=map_digits).to_pylist()
    assert ours == regex_normalize(texts, map_digits)


@pytest.mark.parametrize("map_digits", [False, True])
def test_normalization_equals_the_regex_pipeline_on_the_corpus(map_digits: bool) -> None:
    assert normalize_for_near_dup(pa.array(CORPUS), map_digits=map_digits).to_pylist() == \
        regex_normalize(CORPUS, map_digits)


def test_information_separators_are_trimmed_at_the_ends_only() -> None:
    texts = ["a\x1c b", "\x1c\x1ca b\x1c", " \x1c ", "x\x1cy", "\x1c", "a\x1c"]
    assert normalize_for_near_dup(pa.array(texts), map_digits=False).to_pylist() == \
        ["a\x1c b", "a b", "", "x\x1cy", "", "a"]


def test_sliced_large_and_chunked_inputs() -> None:
    array = pa.array(CORPUS, pa.string())
    expected = regex_normalize(CORPUS, False)
    assert normalize_for_near_dup(array.slice(3, 9), map_digits=False).to_pylist() == expected[3:12]
    assert normalize_for_near_dup(array.cast(pa.large_string()), map_digits=False).to_pylist() == expected
    chunked = pa.chunked_array([array.slice(0, 5), array.slice(5)])
    assert normalize_for_near_dup(chunked, map_digits=False).to_pylist() == expected


def test_words_never_run_across_documents() -> None:
    spans = token_spans(pa.array(["abc", "def", "", "g!", "!h"]), map_digits=False)
    assert spans.counts.tolist() == [1, 1, 0, 1, 1]
    words = [spans.data[s:s + n].tobytes() for s, n in zip(spans.starts, spans.lengths)]
    assert words == [b"abc", b"def", b"g", b"h"]


def test_spans_are_the_words_of_the_joined_text() -> None:
    spans = token_spans(pa.array(CORPUS), map_digits=False)
    joined = spans.joined().to_pylist()
    words = [spans.data[s:s + n].tobytes().decode() for s, n in zip(spans.starts, spans.lengths)]
    expected = [w for text in joined for w in (text.split(" ") if text else [])]
    assert words == expected
    assert spans.counts.tolist() == [len(t.split(" ")) if t else 0 for t in joined]


def test_normalization_is_nfkc_then_lowercase() -> None:
    texts = ["ÉTÉ ﬁne", "Ｈｅｌｌｏ", "\u212a", "e\u0301", "plain ASCII", "Ω and ω", "İstanbul"]
    expected = pc.utf8_lower(pa.array([unicodedata.normalize("NFKC", t) for t in texts])).to_pylist()
    assert normalize_for_near_dup(pa.array(texts), map_digits=False).to_pylist() == expected


def test_code_point_classes() -> None:
    classes = code_point_classes()
    assert classes.dtype == np.uint8 and len(classes) == 0x110000
    assert all(classes[ord(c)] & SEPARATOR for c in " \t.,!’—\u00a0\u3000🎉")
    assert not any(classes[ord(c)] & SEPARATOR for c in "aé日0٣\x1c")
    assert [c for c in range(0x80) if classes[c] & TRIMMED] == [0x1C, 0x1D, 0x1E, 0x1F]
    assert not np.any(classes[:0x80] & NFKC_UNSAFE)
    assert all(classes[ord(c)] & NFKC_UNSAFE for c in "\u0301…ﬁ\u00a0\u1161\u09be")
    assert not any(classes[ord(c)] & NFKC_UNSAFE for c in "é日’—한")
    assert classes[ord("É")] & LOWER_CHANGES and not classes[ord("é")] & LOWER_CHANGES


def test_decode_matches_python() -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.integers(0x80, 0x800, 300), rng.integers(0x800, 0xD800, 300),
                             rng.integers(0x10000, 0x110000, 300), rng.integers(0x20, 0x80, 300)])
    text = "".join(map(chr, rng.permutation(points))) + "😀"  # a 4-byte sequence last
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    code_points, lengths = decode(data, np.flatnonzero(data >= 0xC0))
    assert code_points.tolist() == [ord(c) for c in text if ord(c) >= 0x80]
    assert lengths.tolist() == [len(c.encode()) for c in text if ord(c) >= 0x80]
    garbage = rng.integers(0, 256, 1000).astype(np.uint8)
    assert int(decode(garbage, np.flatnonzero(garbage >= 0xC0))[0].max()) <= 0x10FFFF


def hashes_of(words: list[str]) -> list[int]:
    spans = token_spans(pa.array([" ".join(words)]), map_digits=False)
    assert spans.counts.tolist() == [len(words)]
    return word_hashes(spans).tolist()


def test_word_hashes_depend_on_the_word_only() -> None:
    long = "x" * 300  # past the vectorized chunks: hashed one by one
    words = ["a", "ab", "abcdefgh", "abcdefghi", "abcdefghij" * 5, long, "日本語", "a"]
    alone = [hashes_of([w])[0] for w in words]
    assert hashes_of(words) == alone
    assert alone[0] == alone[-1]
    assert len(set(alone[:-1])) == len(words) - 1


def test_word_hashes_of_nearby_words_differ() -> None:
    words = ["a\x00", "a", "abcdefgh", "abcdefgh\x00", "abcdefghabcdefgh", "abcdefghabcdefgi",
             "x" * 257, "x" * 256, "x" * 255 + "y", "y" + "x" * 255]
    assert len(set(hashes_of(words))) == len(words)


def test_window_hashes_layout_and_short_documents() -> None:
    tokens = np.arange(1, 12, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    counts = np.array([6, 0, 2, 3], dtype=np.int64)  # 2 windows, none, 1 short, 1 short
    values = window_hashes(tokens, counts, 5)
    assert len(values) == 4 and len(set(values.tolist())) == 4
    assert values[0] == window_hashes(tokens[:5], np.array([5]), 5)[0]
    assert values[2] == window_hashes(tokens[6:8], np.array([2]), 5)[0]
    assert values[2] != window_hashes(tokens[6:7], np.array([1]), 5)[0]
    unigrams = window_hashes(tokens, np.array([11]), 1)
    assert unigrams.tolist() == window_hashes(tokens, np.ones(11, dtype=np.int64), 1).tolist()
