"""Unit tests of near-duplicate normalization and shingling (operators/dedup/shingling.py)."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pytest
from datasketch.hashfunc import sha1_hash32
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.dedup.shingling import (
    ShingleSets,
    char_shingles,
    normalize_for_near_dup,
    word_shingles,
)

PARAGRAPH = (
    "Git is a free and open source distributed version control system designed to handle "
    "everything from small to very large projects with speed and efficiency. It is easy to "
    "learn and has a tiny footprint with lightning fast performance."
)

CORPUS: list[str | None] = [
    PARAGRAPH,
    PARAGRAPH.upper().replace(".", "!!"),                      # same after normalization
    PARAGRAPH.replace(" ", "\n\t ") + " (mirror copy)",
    "The quick brown fox jumps over the lazy dog. " * 6,       # repeated shingles
    "Le cœur a ses raisons que la raison ne connaît point ; c'est l'été à Paris.",
    "Straße, Fußgänger und Übergänge: die Bürger zahlen 12,50 € pro Monat.",
    "Привет, мир! Это тестовый документ на русском языке, почти как другие.",
    "東京は日本の首都です。大阪は第二の都市です。",               # no spaces: few long words
    "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ　ａｎｄ　ﬁne ligatures ﬂow here too",
    "Emoji 🎉 party 🎉 time with symbols ++ and == and <<arrows>> everywhere",
    "non\u00a0breaking\u00a0spaces and\u2003em spaces\u3000and ideographic ones",
    "Version 2.41.0 was released on 2023-06-01 with 1,234 changes and 56 fixes.",
    "def main(argv):\n    return run(argv[1:], verbose=True)  # entry point",
    "one",
    "two words",
    "exactly four words here",
    "exactly five words right here",
    "six words are in this one",
    "",
    "   \n\t  ",
    "?!... --- ;;; ***",
    None,
    "Α β γ δ ε ζ η θ ι κ λ μ ν ξ ο π ρ σ τ υ φ χ ψ ω in Greek letters",
    "Ça va? Oui, ça va très bien, merci beaucoup; et toi, ça va aussi?",
    "naïve café résumé coöperate façade jalapeño piñata über",
    "a a a a a a a a a a a a",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
    "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor",
    "Tabs\tand\nnewlines\r\nand\x0bvertical\x0ctabs\x85next line",
    "Mixed: العربية و עברית and English words together in one line",
]


def reference_normalize(text: str | None, map_digits: bool = False) -> str:
    """Independent, per-character reimplementation of normalize_for_near_dup."""
    if text is None:
        return ""
    out = []
    for ch in unicodedata.normalize("NFKC", text).lower():
        category = unicodedata.category(ch)
        if category[0] in "PSZ" or ch in "\t\n\x0b\x0c\r\x85":
            out.append(" ")
        elif map_digits and category == "Nd":
            out.append("0")
        else:
            out.append(ch)
    return " ".join(w for w in "".join(out).split(" ") if w)


def reference_word_shingles(text: str | None, ngram: int) -> list[str]:
    """Shingle strings of one document: n consecutive words joined by single spaces."""
    words = reference_normalize(text).split()
    if not words:
        return []
    return [" ".join(words[i:i + ngram]) for i in range(max(len(words) - ngram + 1, 1))]


def reference_char_shingles(text: str | None, ngram: int) -> list[str]:
    s = reference_normalize(text)
    if not s:
        return []
    return [s[i:i + ngram] for i in range(max(len(s) - ngram + 1, 1))]


def normalized(*texts: str | None, map_digits: bool = False) -> list[str | None]:
    return normalize_for_near_dup(pa.array(texts, pa.string()), map_digits=map_digits).to_pylist()


def as_sets(shingles: ShingleSets) -> list[list[int]]:
    return [shingles.doc(i).tolist() for i in range(shingles.num_docs)]


# normalization


def test_case_spacing_and_punctuation_variants_normalize_equal() -> None:
    variants = ["Hello,   World!", "hello world", "HELLO -- world...", "\tHello\n\nWORLD?! ",
                "Ｈｅｌｌｏ\u3000World", "hello\u00a0world", "«Hello» (world)"]
    assert normalized(*variants) == ["hello world"] * len(variants)


def test_punctuation_and_symbols_become_spaces() -> None:
    assert normalized("e-mail: a@b.c", "x+y=z", "$5 & 10€", "it's") == [
        "e mail a b c", "x y z", "5 10", "it s"]


def test_digits_kept_or_mapped_to_zero() -> None:
    text = "Call 555-1234 now, ٣ times"
    assert normalized(text) == ["call 555 1234 now ٣ times"]
    assert normalized(text, map_digits=True) == ["call 000 0000 now 0 times"]
    assert normalized("１２３", map_digits=True) == ["000"]  # NFKC folds fullwidth first


def test_unicode_folding_and_letters_kept() -> None:
    assert normalized("ﬁne ＡＢＣ Straße ÉTÉ Привет") == ["fine abc straße été привет"]


def test_nulls_stay_null_and_empty_stays_empty() -> None:
    assert normalized(None, "", "  ", "?!") == [None, "", "", ""]


def test_chunked_input_gives_one_array() -> None:
    chunked = pa.chunked_array([pa.array(["A, b"]), pa.array(["C!"])])
    result = normalize_for_near_dup(chunked, map_digits=False)
    assert isinstance(result, pa.Array)
    assert result.to_pylist() == ["a b", "c"]


def test_matches_reference_normalization_on_corpus() -> None:
    ours = normalized(*CORPUS)
    assert [o or "" for o in ours] == [reference_normalize(t) for t in CORPUS]


# word shingles


def test_window_counts_and_layout() -> None:
    texts = ["a b c d e f g", "one two", "", None, "?!", "a b c d e"]
    shingles = word_shingles(pa.array(texts), 5, "fast")
    assert shingles.offsets.dtype == np.int64 and shingles.values.dtype == np.uint64
    assert shingles.offsets.tolist() == [0, 3, 4, 4, 4, 4, 5]
    assert shingles.num_docs == 6
    assert shingles.sizes.tolist() == [3, 1, 0, 0, 0, 1]


def test_short_document_is_one_shingle_of_all_its_words() -> None:
    shingles = word_shingles(pa.array(["Two words!", "x"]), 5, "datasketch")
    assert as_sets(shingles) == [[sha1_hash32(b"two words")], [sha1_hash32(b"x")]]


def test_repeated_windows_are_one_shingle() -> None:
    for scheme in ("fast", "datasketch"):
        shingles = word_shingles(pa.array(["a b a b a b a b", "a a a a a a"]), 2, scheme)
        assert shingles.sizes.tolist() == [2, 1]


def test_sets_are_sorted_and_unique_per_document() -> None:
    shingles = word_shingles(pa.array(CORPUS), 3, "fast")
    for i in range(shingles.num_docs):
        doc = shingles.doc(i)
        assert np.all(doc[1:] > doc[:-1])


@pytest.mark.parametrize("char_ngram", [None, 4])
def test_32_bit_sets_are_the_top_halves_of_the_64_bit_ones(char_ngram: int | None) -> None:
    texts = pa.array([*CORPUS, " ".join(f"w{i % 97}" for i in range(2000))])
    make = (lambda **kw: char_shingles(texts, char_ngram, "fast", **kw)) if char_ngram else \
        (lambda **kw: word_shingles(texts, 5, "fast", **kw))
    wide, narrow = make(), make(bits=32)
    assert narrow.values.dtype == np.uint32
    for i in range(wide.num_docs):
        assert narrow.doc(i).tolist() == sorted({v >> 32 for v in wide.doc(i).tolist()})


def test_32_bit_datasketch_sets_keep_their_values() -> None:
    wide, narrow = (word_shingles(pa.array(CORPUS), 5, "datasketch", bits=b) for b in (64, 32))
    assert narrow.values.dtype == np.uint32 and narrow.values.tolist() == wide.values.tolist()
    with pytest.raises(ValueError, match="bits must be 32 or 64"):
        word_shingles(pa.array(CORPUS), 5, "fast", bits=16)  # type: ignore[arg-type]


def test_datasketch_scheme_hashes_the_joined_words() -> None:
    shingles = word_shingles(pa.array(CORPUS), 5, "datasketch")
    for i, text in enumerate(CORPUS):
        expected = sorted({sha1_hash32(s.encode()) for s in reference_word_shingles(text, 5)})
        assert shingles.doc(i).tolist() == expected, CORPUS[i]


def test_fast_and_datasketch_schemes_agree_on_set_sizes() -> None:
    fast = word_shingles(pa.array(CORPUS), 5, "fast")
    compat = word_shingles(pa.array(CORPUS), 5, "datasketch")
    reference = [len(set(reference_word_shingles(t, 5))) for t in CORPUS]
    assert fast.sizes.tolist() == compat.sizes.tolist() == reference


def test_normalized_copies_have_equal_shingles() -> None:
    shingles = word_shingles(pa.array(CORPUS[:2]), 5, "fast")
    assert shingles.doc(0).tolist() == shingles.doc(1).tolist()


def test_word_order_matters() -> None:
    shingles = word_shingles(pa.array(["a b c d e", "e d c b a", "a b c d"]), 5, "fast")
    assert len({tuple(s) for s in as_sets(shingles)}) == 3


@pytest.mark.parametrize("ngram", [1, 5])
def test_both_ways_of_building_sets_agree(ngram: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from operators.dedup import shingling

    texts = pa.array([*CORPUS, "", "short", " ".join(["word"] * 300), None] * 3)
    monkeypatch.setattr(shingling, "LOOP_MIN_SHINGLES", 0)  # every batch document by document
    one_by_one = word_shingles(texts, ngram, "fast")
    monkeypatch.setattr(shingling, "LOOP_MIN_SHINGLES", 10**9)  # every batch in one global sort
    global_sort = word_shingles(texts, ngram, "fast")
    assert np.array_equal(one_by_one.values, global_sort.values)
    assert np.array_equal(one_by_one.offsets, global_sort.offsets)
    assert as_sets(one_by_one) == [sorted(set(s)) for s in as_sets(word_shingles(texts, ngram, "fast", as_sets=False))]


def test_fast_shingles_do_not_depend_on_the_batch() -> None:
    together = as_sets(word_shingles(pa.array(CORPUS), 5, "fast"))
    alone = [as_sets(word_shingles(pa.array([t], pa.string()), 5, "fast"))[0] for t in CORPUS]
    assert together == alone


def test_map_digits_option_reaches_shingles() -> None:
    texts = pa.array(["build 1234 passed", "build 9876 passed"])
    assert as_sets(word_shingles(texts, 3, "fast"))[0] != as_sets(word_shingles(texts, 3, "fast"))[1]
    mapped = as_sets(word_shingles(texts, 3, "fast", map_digits=True))
    assert mapped[0] == mapped[1]


def test_empty_batch() -> None:
    for func in (word_shingles, char_shingles):
        shingles = func(pa.array([], pa.string()), 5, "fast")
        assert shingles.num_docs == 0 and shingles.values.size == 0
        assert shingles.offsets.tolist() == [0]


@pytest.mark.parametrize("ngram", [0, -1, 2.5])
def test_bad_ngram_is_rejected(ngram: object) -> None:
    with pytest.raises(ValueError, match="ngram"):
        word_shingles(pa.array(["a b"]), ngram, "fast")  # type: ignore[arg-type]


def test_bad_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="scheme"):
        word_shingles(pa.array(["a b"]), 2, "md5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scheme"):
        char_shingles(pa.array(["a b"]), 2, "md5")  # type: ignore[arg-type]


# character shingles


def test_char_shingles_count_code_points_and_spaces() -> None:
    texts = ["abcdef", "ab", "", "日本語テキスト", "a b!"]
    shingles = char_shingles(pa.array(texts), 3, "fast")
    assert shingles.sizes.tolist() == [4, 1, 0, 5, 1]  # "a b!" normalizes to "a b"


def test_char_datasketch_scheme_hashes_the_substrings() -> None:
    shingles = char_shingles(pa.array(CORPUS), 5, "datasketch")
    for i, text in enumerate(CORPUS):
        expected = sorted({sha1_hash32(s.encode()) for s in reference_char_shingles(text, 5)})
        assert shingles.doc(i).tolist() == expected


def test_char_fast_sizes_match_reference_and_ignore_batch() -> None:
    together = char_shingles(pa.array(CORPUS), 4, "fast")
    assert together.sizes.tolist() == [len(set(reference_char_shingles(t, 4))) for t in CORPUS]
    alone = [as_sets(char_shingles(pa.array([t], pa.string()), 4, "fast"))[0] for t in CORPUS]
    assert as_sets(together) == alone


# properties

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(docs=st.lists(st.lists(st.sampled_from(WORDS), max_size=30).map(" ".join), max_size=6),
       ngram=st.integers(1, 6))
def test_fast_word_sets_match_reference_sets(docs: list[str], ngram: int) -> None:
    shingles = word_shingles(pa.array(docs, pa.string()), ngram, "fast")
    reference = [set(reference_word_shingles(d, ngram)) for d in docs]
    assert shingles.sizes.tolist() == [len(r) for r in reference]
    # Shared hashes <=> shared shingles, pair by pair (64-bit collisions are negligible).
    for i in range(len(docs)):
        for j in range(i, len(docs)):
            shared = np.intersect1d(shingles.doc(i), shingles.doc(j), assume_unique=True)
            assert shared.size == len(reference[i] & reference[j])
