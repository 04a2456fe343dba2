"""embed: the prefix-tokenization rule, length buckets, and equality with SentenceTransformer.encode."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from operators.embedding.embed import (TOKEN_IDS, Embed, EmbedConfig, EmbedEncode, EmbedEncodeConfig,
                                       EmbedTokenize, EmbedTokenizeConfig)
from operators.embedding.embed_model import (ModelNotFoundError, PrefixTokenizer, char_budget, length_buckets,
                                             load_tokenizer, model_layout, model_path, token_lists)

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["A short sentence.", "", "  padded with spaces  ", "Ünïcödé façade — naïve café.",
         "数据整理和去重是预训练的关键步骤。" * 40, "The quick brown fox jumps over the lazy dog. " * 700]


def whole_text_ids(texts: list[str], max_seq_length: int) -> list[list[int]]:
    """Token ids as sentence-transformers gets them: the whole text, truncated."""
    tok = load_tokenizer(model_layout(model_path(MODEL)).transformer_dir)
    tok.no_padding()
    tok.enable_truncation(max_length=max_seq_length)
    return [e.ids for e in tok.encode_batch(texts)]


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path(MODEL)), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def tokenize() -> EmbedTokenize:
    return EmbedTokenize(EmbedTokenizeConfig())


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# --- the prefix rule ---------------------------------------------------------------------------

def test_char_budget_is_max_seq_length_times_chars_per_token() -> None:
    assert char_budget(256, 8.0) == 2048
    assert char_budget(10, 2.5) == 25
    assert char_budget(1, 0.1) == 1


def test_prefix_ids_equal_whole_text_ids_and_the_budget_holds(tokenize: EmbedTokenize) -> None:
    ids = tokenize(pa.table({"text": TEXTS}))[TOKEN_IDS].to_pylist()
    assert ids == whole_text_ids(TEXTS, 256)
    assert [len(i) for i in ids][-1] == 256 and ids[1] == [101, 102]  # "" -> [CLS] [SEP]
    assert tokenize._tokenizer.budget == 2048


@pytest.mark.parametrize("segments", [True, False])
@pytest.mark.parametrize("cut", range(0, 12))
def test_a_cut_inside_the_last_kept_word_falls_back_to_a_longer_prefix(cut: int, segments: bool) -> None:
    # budget 12 chars; max 6 tokens = 4 content tokens. Words of varied length put the cut at
    # every position relative to word and wordpiece boundaries.
    tokenizer = PrefixTokenizer(MODEL, max_seq_length=6, chars_per_token=2.0, segments=segments)
    text = "x" * cut + " unbelievably tokenization antidisestablishment a bb ccc " * 3
    assert tokenizer(pa.array([text])).to_pylist() == whole_text_ids([text], 6)


@pytest.mark.parametrize("segments", [True, False])
def test_fallbacks_happen_where_the_prefix_is_too_short_and_ids_still_match(segments: bool) -> None:
    tokenizer = PrefixTokenizer(MODEL, max_seq_length=16, chars_per_token=2.0, segments=segments)
    texts = ["y" * 150 + " tail words here " * 20,  # a >100-char word is one [UNK]
             " " * 200 + "words after a long run of spaces " * 5,
             "word" * 3000,  # one [UNK] word: no prefix is safe, the whole text is read
             "ok " * 100, None]
    got = tokenizer(pa.array(texts, pa.string())).to_pylist()
    assert got == whole_text_ids([t or "" for t in texts], 16)
    assert tokenizer.fallbacks >= 3


@pytest.mark.parametrize("whitespace_cut", [True, False])
def test_both_passes_give_whole_text_ids(whitespace_cut: bool) -> None:
    # BERT takes the whitespace-cut pass first; the general (word ids) pass serves any tokenizer
    tokenizer = PrefixTokenizer(MODEL, max_seq_length=8, chars_per_token=3.0, segments=False)
    assert tokenizer._whitespace_cut
    tokenizer._whitespace_cut = whitespace_cut
    texts = TEXTS + ["数据整理和去重是预训练的关键步骤" * 5,  # no whitespace in the prefix
                     "a " * 40 + "z" * 30,  # enough tokens before the last space
                     "word " + "q" * 120 + " end " * 5,  # too few tokens once cut at the space
                     "tab\tseparated\nlines\r\nand more words here " * 3]
    assert tokenizer(pa.array(texts)).to_pylist() == whole_text_ids(texts, 8)


def test_naive_prefix_tokenization_would_differ_where_the_cut_splits_a_kept_word() -> None:
    # why the rule checks word boundaries: 'antidisestablishment' cut inside is other wordpieces
    tok = load_tokenizer(model_layout(model_path(MODEL)).transformer_dir)
    tok.no_padding()
    tok.enable_truncation(max_length=6)
    text = "an antidisestablishment movement"
    assert tok.encode(text[:12]).ids != tok.encode(text).ids
    assert PrefixTokenizer(MODEL, 6, 2.0)(pa.array([text])).to_pylist() == [tok.encode(text).ids]


def test_devdocs_prefix_ids_equal_whole_text_ids(shared_devdocs: Path, tokenize: EmbedTokenize) -> None:
    with gzip.open(shared_devdocs, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in itertools.islice(f, 200)]
    ids = tokenize(pa.table({"text": texts}))[TOKEN_IDS].to_pylist()
    assert ids == whole_text_ids(texts, 256)


# --- buckets --------------------------------------------------------------------------------------

def test_length_buckets_sort_by_length_and_pad_per_mini_batch() -> None:
    rows = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9], [10, 11], None]
    ids = pa.array(rows, pa.list_(pa.int32()))
    batches = list(length_buckets(ids, batch_size=2, pad_id=0))
    assert [b.rows.tolist() for b in batches] == [[3, 0], [4, 1], [2, 5]]
    assert [b.input_ids.shape for b in batches] == [(2, 5), (2, 2), (2, 1)]
    for batch in batches:
        for row, padded, mask in zip(batch.rows, batch.input_ids, batch.attention_mask):
            want = rows[row] or []
            assert padded[mask == 1].tolist() == want
            assert mask.sum() == len(want) and (padded[mask == 0] == 0).all()


def test_token_lists_round_trip() -> None:
    lists = [[101, 7, 102], [], [1]]
    array = token_lists(lists)
    assert array.type == pa.list_(pa.int32()) and array.to_pylist() == lists


# --- encoding ----------------------------------------------------------------------------------

def test_embeddings_equal_sentence_transformers_encode(tokenize: EmbedTokenize, reference) -> None:
    encode = EmbedEncode(EmbedEncodeConfig(dtype="float32", device="cpu", batch_size=2))
    out = encode(tokenize(pa.table({"text": TEXTS, "id": [str(i) for i in range(len(TEXTS))]})))
    assert out.column_names == ["text", "id", "embedding"]  # the token ids are gone
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    got = np.array(out["embedding"].to_pylist(), dtype=np.float32)
    want = reference.encode(TEXTS, normalize_embeddings=True)
    assert np.abs(got - want).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_float16_embeddings_and_batch_size_do_not_change_the_vector(tokenize: EmbedTokenize, reference) -> None:
    batch = tokenize(pa.table({"text": TEXTS}))
    small = EmbedEncode(EmbedEncodeConfig(device="cpu", batch_size=1))(batch)
    large = EmbedEncode(EmbedEncodeConfig(device="cpu", batch_size=256))(batch)
    assert small.schema.field("embedding").type == pa.list_(pa.float16(), 384)
    a = np.array(small["embedding"].to_pylist(), dtype=np.float32)
    b = np.array(large["embedding"].to_pylist(), dtype=np.float32)
    assert np.abs(a - b).max() <= 1e-3  # one float16 rounding step at most
    assert cosines(a, reference.encode(TEXTS, normalize_embeddings=True)).min() > 0.9999


def test_empty_batch(tokenize: EmbedTokenize) -> None:
    empty = tokenize(pa.table({"text": pa.array([], pa.string())}))
    assert empty.schema.field(TOKEN_IDS).type == pa.list_(pa.int32())
    out = EmbedEncode(EmbedEncodeConfig(device="cpu"))(empty)
    assert out.num_rows == 0 and out.column_names == ["text", "embedding"]


# --- config --------------------------------------------------------------------------------------

def test_composite_gives_each_part_only_its_settings() -> None:
    config = EmbedConfig(dtype="float32", max_seq_length=128)
    tokenize, encode = Embed.parts(config)
    assert (tokenize.suffix, encode.suffix) == ("tokenize", "encode")
    assert tokenize.config == EmbedTokenizeConfig(max_seq_length=128)
    assert encode.config == EmbedEncodeConfig(dtype="float32")
    assert EmbedEncode.resources.stateful and not EmbedTokenize.resources.stateful


def test_bad_settings_fail_at_load_or_init(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        EmbedConfig(dtype="bfloat16")
    with pytest.raises(ValidationError):
        EmbedConfig(batch_sizes=3)
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        model_path(str(tmp_path / "no-such-model"))
    with pytest.raises(ValueError, match="exceeds"):
        PrefixTokenizer(MODEL, max_seq_length=1024, chars_per_token=8.0)


def test_relative_model_directories_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    assert EmbedConfig(model="m").model == str(tmp_path / "m")
    assert EmbedConfig().model == MODEL
