"""``mix.tokens``: each document's token count, the unit a mix's budget is written in.

Two ways, chosen by ``tokens`` in the config:

- an estimate: ``ceil(UTF-8 bytes / value)`` (default 4 bytes per token, about what a
  GPT-2-style byte-level BPE gives on English web text) or ``ceil(words / value)``, words
  being runs of non-whitespace; both vectorized in Arrow;
- a Hugging Face ``tokenizer.json`` through the ``tokenizers`` library (Rust, batched),
  counting tokens without special tokens: the exact figure for the tokenizer a model will
  be trained with.

The counts are checkpointed with the stage, so changing a weight or the budget never
recounts; changing the tokenizer file does (its SHA-256 is part of the fingerprint). A
tokenizer named by local path or ``s3://`` URI is copied into the run's store when the run
starts (jobs/models.py) and handed to the workers as this stage's artifact.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import MapOperator, ResourceHint, set_column
from operators.mixing.config import TOKENS, MixConfig, TokenCountConfig
from operators.registry import register

TOKENIZER_BATCH = 256
"""Texts handed to ``encode_batch`` at once: enough for the library's threads, little memory."""


def estimated_tokens(text: pa.Array | pa.ChunkedArray, config: TokenCountConfig) -> np.ndarray:
    """``ceil(size / value)`` per document (``int64``; 0 for a null or empty text)."""
    if config.estimate == "bytes_per_token":
        size = pc.binary_length(text.cast(pa.string()))
    else:
        size = pc.count_substring_regex(text.cast(pa.string()), pattern=r"\S+")
    counts = pc.fill_null(size, 0).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.ceil(counts / config.value).astype(np.int64)


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str, sha256: str | None) -> Any:
    from tokenizers import Tokenizer  # only runs that name a tokenizer need the library loaded

    return Tokenizer.from_file(path)


@functools.lru_cache(maxsize=2)
def tokenizer_from_bytes(data: bytes) -> Any:
    """A tokenizer from a tokenizer.json's bytes (as jobs/ stages it: ``model_format = "bytes"``).

    Raises:
        ValueError: the bytes are not a tokenizer.json the library reads.
    """
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(data.decode("utf-8"))
    except Exception as err:  # the library raises its own Exception type
        raise ValueError(f"not a Hugging Face tokenizer.json ({str(err)[:200]})") from None


def tokenizer_counts(texts: list[str | None], path: str | None, sha256: str | None = None,
                     tokenizer: Any = None) -> np.ndarray:
    """Tokens per text with ``tokenizer`` (else the one at ``path``), special tokens left out."""
    tokenizer = tokenizer or _tokenizer(path, sha256)
    counts = np.zeros(len(texts), np.int64)
    for start in range(0, len(texts), TOKENIZER_BATCH):
        chunk = [t or "" for t in texts[start:start + TOKENIZER_BATCH]]
        encoded = tokenizer.encode_batch(chunk, add_special_tokens=False)
        counts[start:start + len(chunk)] = [len(e.ids) for e in encoded]
    return counts


@register("mix.tokens")
class MixTokens(MapOperator[MixConfig]):
    """Tokens per document, estimated from its size or counted by a tokenizer.

    Reads: text. Writes: mix_tokens (int64).
    """

    keeps_rows = True
    version = 1
    Config = MixConfig
    reads = ("text",)
    writes = (TOKENS,)
    resources = ResourceHint(num_cpus=1.0)
    # jobs/ copies the tokenizer.json (local or s3://) into the store and hands it over
    model_field = "tokens.tokenizer"
    model_format = "bytes"

    @classmethod
    def check_model(cls, config: MixConfig, table: pa.Table) -> dict[str, Any]:  # type: ignore[override]
        tokenizer = tokenizer_from_bytes(table["data"][0].as_py())
        return {"tokenizer_vocabulary": tokenizer.get_vocab_size()}

    def __call__(self, batch: pa.Table) -> pa.Table:
        tokens = self.config.tokens
        if tokens.tokenizer:
            staged = tokenizer_from_bytes(self.artifact["data"][0].as_py()) if self.artifact is not None else None
            counts = tokenizer_counts(batch["text"].to_pylist(), tokens.tokenizer, tokens.tokenizer_sha256, staged)
        else:
            counts = estimated_tokens(batch["text"], tokens)
        return set_column(batch, TOKENS, pa.array(counts, pa.int64()))
