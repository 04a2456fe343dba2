"""Document embeddings with a sentence-transformers model: tokenize on CPU, encode on actors.

Composite ``embed`` = ``embed.tokenize`` (map, CPU tasks) -> ``embed.encode`` (map, one
model per actor, GPU when there is one). Splitting them takes tokenization, which is
single-threaded host work inside ``SentenceTransformer.encode`` and its bottleneck on a GPU,
off the model's critical path: it runs on every CPU of the cluster, and the model actors
only pad and run pre-tokenized, length-sorted mini-batches.
"""

from __future__ import annotations

import time

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from operators.base import Composite, MapOperator, OperatorConfig, Part, ResourceHint, set_column
from operators.embedding.embed_model import (BUNDLED_NAMES, DEFAULT_MODEL, TOKEN_IDS_TYPE, BatchEncoder,
                                             shared_prefix_tokenizer)
from operators.registry import register

EMBEDDING = "embedding"
"""Output column (the name operators/embedding/vectors.py reads); kept free of that module's
imports so the model side runs where only torch and sentence-transformers are installed."""

TOKEN_IDS = "embed_token_ids"
"""Hand-over column of the two stages; ``embed.encode`` removes it."""

_MODEL_HELP = ("sentence-transformers model: 'all-MiniLM-L6-v2' (bundled, the default), a local "
               "directory, or a hub id already in the local Hugging Face cache; never downloaded.")


def _absolute(model: str) -> str:
    """A relative directory becomes absolute (workers may not share the driver's cwd)."""
    from pathlib import Path

    path = Path(model).expanduser()
    return str(path.resolve()) if model not in BUNDLED_NAMES and path.is_dir() else model


class EmbedTokenizeConfig(OperatorConfig):
    """How texts become token ids."""

    model: str = Field(DEFAULT_MODEL, description=_MODEL_HELP)
    max_seq_length: int | None = Field(
        None, gt=1, description="Tokens per document, special tokens included (null: the model's own, "
        "256 for all-MiniLM-L6-v2); longer documents are truncated, as sentence-transformers does.")
    chars_per_token: float = Field(
        8.0, gt=0, description="Tokenize the first max_seq_length * chars_per_token characters; "
        "longer prefixes are tried where that gives too few tokens, so the ids never change.")

    @field_validator("model")
    @classmethod
    def _absolute_model(cls, model: str) -> str:
        return _absolute(model)


class EmbedEncodeConfig(OperatorConfig):
    """How token ids become vectors."""

    model: str = Field(DEFAULT_MODEL, description=_MODEL_HELP)
    dtype: Literal["float16", "float32"] = Field(
        "float16", description="Element type of `embedding`; float16 halves storage and moves the cosine "
        "to the float32 vector by < 1e-5.")
    batch_size: int = Field(512, gt=0, description="Documents per forward pass (one mini-batch); "
                            "512 reached the forward-pass ceiling on the GPU measured (docs/benchmarks.md).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda (fp16) when the worker sees a GPU, else cpu (fp32).")

    @field_validator("model")
    @classmethod
    def _absolute_model(cls, model: str) -> str:
        return _absolute(model)


class EmbedConfig(EmbedTokenizeConfig, EmbedEncodeConfig):
    """Both parts' settings; each part gets (and is fingerprinted on) only its own."""


@register("embed.tokenize")
class EmbedTokenize(MapOperator[EmbedTokenizeConfig]):
    """Token ids of each document as the model's tokenizer gives them, truncated to max_seq_length.

    Algorithm: the model's fast (Rust) tokenizer with special tokens and truncation to
    ``max_seq_length`` tokens, exactly as ``SentenceTransformer.encode`` tokenizes (no
    stripping; lowercased first where the model's ``do_lower_case`` says so). Only the first
    ``max_seq_length * chars_per_token`` characters are tokenized; where the tokens kept could
    depend on the cut (the prefix yields too few whole words) a 4x longer prefix is tried, up
    to the whole text, so the ids equal whole-text tokenization (``PrefixTokenizer``).
    BERT tokenizers (WordPiece after ``BertPreTokenizer``) first take a batch-at-once path
    (``segment_tokenizer.py``): each text's segments (words, isolated punctuation) are found
    with array operations and every distinct segment is tokenized once per worker process,
    several times the tokenizer's own batch encoding per core (docs/benchmarks.md); its ids
    are identical.

    Reads: text. Writes: ``embed_token_ids`` (list<int32>, [CLS] ... [SEP] for BERT models;
    ``embed.encode`` removes it). Null text tokenizes as "". Drop reasons: none.
    Deterministic: a function of the text, the tokenizer files and the config.
    """

    keeps_rows = True
    version = 1
    Config = EmbedTokenizeConfig
    reads = ("text",)
    writes = (TOKEN_IDS,)
    resources = ResourceHint(num_cpus=1)

    def __init__(self, config: EmbedTokenizeConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._tokenizer = shared_prefix_tokenizer(config.model, config.max_seq_length, config.chars_per_token)
        self._counts = {"embed_documents": 0.0, "embed_longer_prefixes": 0.0, "embed_general_path": 0.0}

    def metrics(self) -> dict[str, float]:
        return dict(self._counts)

    def __call__(self, batch: pa.Table) -> pa.Table:
        tok = self._tokenizer  # shared by the process's operators: count this one's part
        before = tok.fallbacks, tok.general_rows
        ids = tok(batch["text"]) if batch.num_rows else pa.array([], TOKEN_IDS_TYPE)
        self._counts["embed_documents"] += batch.num_rows
        self._counts["embed_longer_prefixes"] += tok.fallbacks - before[0]
        self._counts["embed_general_path"] += tok.general_rows - before[1]
        return set_column(batch, TOKEN_IDS, ids)


@register("embed.encode")
class EmbedEncode(MapOperator[EmbedEncodeConfig]):
    """L2-normalized sentence embedding of each document's token ids; removes the ids.

    Algorithm: Sentence-BERT (Reimers and Gurevych 2019): the model's transformer, then its
    configured pooling (all-MiniLM-L6-v2: mean over non-padding tokens) and modules, as
    ``modules.json`` lists them, then L2 normalization, equal to
    ``SentenceTransformer.encode(normalize_embeddings=True)``. Rows are sorted by token count
    within the batch and padded per mini-batch of ``batch_size``; fp16 on cuda, fp32 on cpu.

    Reads: embed_token_ids. Writes: ``embedding`` (fixed_size_list<float16 or float32>[d],
    d = 384 for all-MiniLM-L6-v2, unit L2 norm up to the dtype's rounding); removes
    ``embed_token_ids``. Drop reasons: none. Deterministic per device kind: the vector depends
    on the row alone, not on batching, but cuda (fp16) and cpu (fp32) differ in the low bits
    (cosine > 0.999).
    """

    keeps_rows = True
    version = 1
    Config = EmbedEncodeConfig
    reads = (TOKEN_IDS,)
    writes = (EMBEDDING,)
    # where the cluster has GPUs, four actors share each (jobs/ reserves a quarter GPU each):
    # one actor's parquet read and write overlaps the others' forward passes
    # (docs/benchmarks.md); a CPU each otherwise
    resources = ResourceHint(num_cpus=1, stateful=True, gpus_when_available=0.25)

    def __init__(self, config: EmbedEncodeConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        started = time.perf_counter()
        self._encoder = BatchEncoder(config.model, config.device, config.batch_size)
        # start-up (imports, CUDA, the model) is idle accelerator time: reported per instance
        self._load_seconds = time.perf_counter() - started
        self._encode_seconds = 0.0
        self._documents = 0

    @classmethod
    def describe(cls, config: OperatorConfig) -> dict[str, Any]:
        return {"model": getattr(config, "model", DEFAULT_MODEL)}

    def metrics(self) -> dict[str, float]:
        """Documents encoded; model loads, their seconds and the seconds spent encoding
        (summed over the stage's actors: loads = actors started)."""
        return {"embed_encoded": float(self._documents), "embed_model_loads": 1.0,
                "embed_load_seconds": round(self._load_seconds, 3),
                "embed_encode_seconds": round(self._encode_seconds, 3)}

    def __call__(self, batch: pa.Table) -> pa.Table:
        self._documents += batch.num_rows
        started = time.perf_counter()
        vectors = self._encoder(batch[TOKEN_IDS]).astype(np.dtype(self.config.dtype), copy=False)
        self._encode_seconds += time.perf_counter() - started
        values = pa.array(vectors.reshape(-1))
        column = pa.FixedSizeListArray.from_arrays(values, self._encoder.dimension)
        return set_column(batch.drop_columns([TOKEN_IDS]), EMBEDDING, column)


@register("embed")
class Embed(Composite[EmbedConfig]):
    """Embeddings: tokenize (map, CPU tasks), then encode (map, model actors, GPU if present)."""

    Config = EmbedConfig

    @classmethod
    def parts(cls, config: EmbedConfig) -> Sequence[Part]:
        tokenize = EmbedTokenizeConfig(**{k: getattr(config, k) for k in EmbedTokenizeConfig.model_fields})
        encode = EmbedEncodeConfig(**{k: getattr(config, k) for k in EmbedEncodeConfig.model_fields})
        # chars_per_token only sizes the first prefix tried: the ids are the whole text's for
        # any value (PrefixTokenizer), so changing it reruns neither tokenize nor encode
        return (Part("tokenize", EmbedTokenize, tokenize, ("model", "max_seq_length")),
                Part("encode", EmbedEncode, encode))
