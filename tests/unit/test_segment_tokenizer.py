"""The batch-at-once BERT tokenization (segment_tokenizer.py) gives the tokenizer's own ids."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from operators.embedding import segment_tokenizer
from operators.embedding.embed_model import PrefixTokenizer, load_tokenizer, model_layout, model_path
from operators.embedding.segment_tokenizer import ISOLATED, SEPARATOR, WORD, SegmentTokenizer, supports

MODEL = "all-MiniLM-L6-v2"

# characters from the classes that matter: ASCII, Latin with accents and combining marks,
# punctuation (ASCII and Unicode), spaces (Unicode too), controls, CJK, Greek, Cyrillic,
# emoji with joiners, replacement characters; plus added-token texts
ALPHABET = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 4
            + list("éÉñçøßİıΣσςЖж中文字日本語한국") + ["\u0301", "\u0308", "\u200d", "\u200b", "\ufeff"]
            + list(".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|") + ["\u2014", "\u201c", "\u201d", "\u00bf", "\u00b7", "\u2260"]
            + [" "] * 30 + ["\n", "\t", "\r", "\u00a0", "\u2028", "\u3000", "\x00", "\x07", "\x7f", "\ufffd"]
            + ["\U0001f600", "\U0001f468\u200d\U0001f469"])
ADDED = ["[MASK]", "[cls]", "[SEP]", "[UNK]"]


def reference_ids(texts: list[str], max_seq_length: int) -> list[list[int]]:
    tok = load_tokenizer(model_layout(model_path(MODEL)).transformer_dir)
    tok.no_padding()
    tok.enable_truncation(max_length=max_seq_length)
    return [e.ids for e in tok.encode_batch(texts)]


def fresh(max_seq_length: int = 32, budget: int = 64) -> SegmentTokenizer:
    return SegmentTokenizer(load_tokenizer(model_layout(model_path(MODEL)).transformer_dir), max_seq_length, budget)


def random_texts(count: int, seed: int, alphabet: list[str] = ALPHABET) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(count)]


def test_the_bundled_model_takes_the_segment_path() -> None:
    assert supports(load_tokenizer(model_layout(model_path(MODEL)).transformer_dir))


def test_code_points_are_classified_by_the_tokenizer_itself() -> None:
    seg = fresh()
    assert [seg._probe(ord(c)) for c in " \n\u3000"] == [SEPARATOR] * 3
    assert [seg._probe(ord(c)) for c in ".,\u201c\u00bf中"] == [ISOLATED] * 5
    # letters, combining accents (stripped) and control characters (deleted) stay in the word
    assert [seg._probe(ord(c)) for c in "aé\u0301\x00\u200d"] == [WORD] * 5


@pytest.mark.parametrize("seed", range(4))
def test_random_unicode_texts_get_the_tokenizers_ids(seed: int) -> None:
    texts = random_texts(300, seed)
    ids, rows = fresh(max_seq_length=32, budget=64)(pa.array(texts))
    assert len(rows) < 30  # only cut prefixes with too few whole segments leave this path
    expected = reference_ids(texts, 32)
    assert [ids[i].as_py() for i in range(len(texts)) if i not in set(rows.tolist())] == \
        [expected[i] for i in range(len(texts)) if i not in set(rows.tolist())]


@pytest.mark.parametrize("seed", range(2))
def test_with_added_token_texts_and_the_fallback_the_ids_are_the_tokenizers(seed: int) -> None:
    texts = random_texts(300, seed, ALPHABET + ADDED * 2)
    tokenizer = PrefixTokenizer(MODEL, max_seq_length=32, chars_per_token=2.0)
    assert tokenizer(pa.array(texts)).to_pylist() == reference_ids(texts, 32)
    assert 0 < tokenizer.general_rows < len(texts)


def test_plain_text_never_leaves_the_segment_path() -> None:
    texts = ["Plain web text, with punctuation: commas; quotes \u201clike these\u201d and caf\u00e9s. " * 9,
             "short", ""]
    ids, rows = fresh(max_seq_length=48, budget=384)(pa.array(texts))
    assert len(rows) == 0
    assert ids.to_pylist() == reference_ids(texts, 48)


def test_added_token_text_and_short_cut_prefixes_are_left_to_the_caller() -> None:
    texts = ["say [MASK] here", "x" * 500 + " y", "fine text"]
    ids, rows = fresh(max_seq_length=16, budget=64)(pa.array(texts))
    assert rows.tolist() == [0, 1]
    assert ids.to_pylist()[0] == [] and ids.to_pylist()[2] == reference_ids(["fine text"], 16)[0]


def test_a_cut_word_at_the_end_of_the_prefix_is_not_used() -> None:
    # the budget cuts "tokenization" to "tokeniz"; the six whole words before it fill the
    # 8 tokens ([CLS] + 6 + [SEP]); with one more token wanted the text is left to the caller
    text = "one two three four five six tokenization " + "more words " * 20
    cut_at = text.index("tokenization") + 7
    ids, rows = fresh(max_seq_length=8, budget=cut_at)(pa.array([text]))
    assert len(rows) == 0 and ids.to_pylist() == reference_ids([text], 8)
    assert fresh(max_seq_length=9, budget=cut_at)(pa.array([text]))[1].tolist() == [0]


def test_results_do_not_depend_on_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = random_texts(200, 7)
    warm = fresh()
    warm(pa.array(random_texts(200, 8)))
    monkeypatch.setattr(segment_tokenizer, "MAX_CACHED_SEGMENTS", 50)  # restarts every batch
    tiny = fresh()
    a, rows_a = warm(pa.array(texts))
    b, rows_b = tiny(pa.array(texts))
    assert a.equals(b) and np.array_equal(rows_a, rows_b)
    assert len(tiny._slots) <= 50 + len(set(texts)) * 120


def test_chunked_and_sliced_input() -> None:
    texts = random_texts(50, 3)
    tokenizer = PrefixTokenizer(MODEL, max_seq_length=24, chars_per_token=4.0)
    chunked = pa.chunked_array([pa.array(texts[:20]), pa.array(texts[20:])])
    assert tokenizer(chunked).to_pylist() == reference_ids(texts, 24)
    assert tokenizer(pa.array(texts).slice(10, 30)).to_pylist() == reference_ids(texts[10:40], 24)
