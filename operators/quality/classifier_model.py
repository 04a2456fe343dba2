"""The linear document classifier behind ``classifier_score``: features, scores, file format.

Two kinds of model, both a linear function of a document's features plus a bias, passed
through the model's link (``logistic``: ``1 / (1 + exp(-z))``, a probability-like score in
(0, 1); ``identity``: ``z`` itself, for a ridge regression):

* ``ngram``: a bag of word unigrams and bigrams hashed into ``buckets`` (the "hashing
  trick", Weinberger et al. 2009), the features of fastText's quality classifier in DCLM
  (Li et al. 2024, arXiv 2406.11794: fastText on unigrams and bigrams). This is a *linear
  model on hashed n-gram counts*, not fastText's model: fastText averages learned
  low-rank n-gram embeddings before its linear layer; here each bucket has one weight.
* ``embedding``: a linear head on the ``embedding`` column (FineWeb-Edu's classifier is a
  regression head on document embeddings; Penedo et al. 2024, arXiv 2406.17557).

Features of an ``ngram`` model, frozen by :data:`FORMAT_VERSION` (a stored model's weights
mean nothing under other features): the text is lowercased (``utf8_lower``) and split into
tokens, the maximal runs of Unicode letters, digits and ``_``; each distinct token is
hashed with xxHash64 (seed 0) of its UTF-8 bytes; a unigram's key is ``fmix64(h ^ S1)``,
a bigram's (two consecutive tokens of one document) ``fmix64(h1 * P + h2 ^ S2)``; the
bucket is the key modulo ``buckets``. A document's vector holds the count of each bucket,
L2-normalized, so long and short documents score on the same scale. Empty documents have
no features and score ``link(bias)``.

File format: one Parquet table with columns ``index`` (int64: a bucket, or an embedding
dimension) and ``weight`` (float32), only non-zero weights, sorted by ``index``, and a
JSON header in the schema metadata under :data:`METADATA_KEY` holding the format name and
version, the kind, link, bias, feature settings, training facts, and ``content_sha256``:
SHA-256 over the canonical JSON of the rest of the header and the bytes of both columns,
checked on load. No pickle anywhere: loading a model runs no code from the file.
Pure functions; no I/O (jobs/ reads and writes the file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

FORMAT = "tamis.classifier"
FORMAT_VERSION = 1
METADATA_KEY = b"tamis.classifier"
KINDS = ("ngram", "embedding")
LINKS = ("logistic", "identity")
TOKEN_SEPARATORS = r"[^\p{L}\p{N}_]+"
"""RE2 pattern of what lies between tokens (RE2's ``\\w`` is ASCII-only, hence the classes)."""

_U64 = np.uint64
_BIGRAM_MULTIPLIER = _U64(0x9E3779B97F4A7C15)
_UNIGRAM_SALT = _U64(0x243F6A8885A308D3)
_BIGRAM_SALT = _U64(0x13198A2E03707344)


class ModelFormatError(ValueError):
    """A table that is not a classifier this version of tamis can read; says what was expected."""


@dataclass(frozen=True)
class NgramFeatures:
    """How an ``ngram`` model turns text into features (stored in the model's header)."""

    buckets: int = 1 << 20
    max_ngram: int = 2  # 1: unigrams; 2: unigrams and bigrams

    def __post_init__(self) -> None:
        if not 2 <= self.buckets <= 1 << 28:
            raise ModelFormatError(f"buckets must be in [2, 2**28], got {self.buckets}")
        if self.max_ngram not in (1, 2):
            raise ModelFormatError(f"max_ngram must be 1 or 2, got {self.max_ngram}")


@dataclass(frozen=True)
class SparseRows:
    """Feature vectors of a batch in coordinate form, sorted by (row, column)."""

    rows: np.ndarray  # int64 document of each entry
    columns: np.ndarray  # int64 bucket of each entry
    values: np.ndarray  # float64 value of each entry
    num_rows: int


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (Appleby 2011), a bijection; arithmetic wraps mod 2**64."""
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def token_hashes(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Hash of every token of every text (documents back to back) and each token's document.

    Tokens are hashed once per distinct token of the batch, not once per occurrence. A null
    text has no tokens.
    """
    lowered = pc.utf8_lower(pc.fill_null(texts, ""))
    lists = pc.split_pattern_regex(lowered, pattern=TOKEN_SEPARATORS)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks() if lists.num_chunks else pa.array([], pa.list_(pa.string()))
    tokens = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    keep = pc.greater(pc.binary_length(tokens), 0)  # the empty pieces before/after separators
    tokens, parents = tokens.filter(keep), parents.filter(keep)
    encoded = pc.dictionary_encode(tokens)
    distinct = np.fromiter((xxhash.xxh64_intdigest(t.encode()) for t in encoded.dictionary.to_pylist()),
                           dtype=np.uint64, count=len(encoded.dictionary))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return distinct[codes], parents.to_numpy(zero_copy_only=False).astype(np.int64)


def ngram_features(texts: pa.Array | pa.ChunkedArray, features: NgramFeatures) -> SparseRows:
    """L2-normalized bucket counts of each document's unigrams (and bigrams), see the module doc."""
    hashes, docs = token_hashes(texts)
    with np.errstate(over="ignore"):
        keys = [_fmix64(hashes ^ _UNIGRAM_SALT)]
        owners = [docs]
        if features.max_ngram == 2 and len(hashes) > 1:
            same = docs[:-1] == docs[1:]
            keys.append(_fmix64((hashes[:-1][same] * _BIGRAM_MULTIPLIER + hashes[1:][same]) ^ _BIGRAM_SALT))
            owners.append(docs[:-1][same])
    buckets = (np.concatenate(keys) % _U64(features.buckets)).astype(np.int64)
    combined = np.concatenate(owners) * features.buckets + buckets
    unique, counts = np.unique(combined, return_counts=True)
    rows, columns = unique // features.buckets, unique % features.buckets
    counts = counts.astype(np.float64)
    norms = np.sqrt(np.bincount(rows, weights=counts * counts, minlength=len(texts)))
    return SparseRows(rows, columns, counts / norms[rows], len(texts))


@dataclass(frozen=True)
class ClassifierModel:
    """A trained linear classifier: weights by feature index, a bias, a link, and its features."""

    kind: str
    link: str
    bias: float
    index: np.ndarray  # int64, sorted, unique
    weight: np.ndarray  # float32, same length
    ngram: NgramFeatures | None = None
    dimensions: int | None = None  # embedding kind: the embedding's length
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelFormatError(f"kind {self.kind!r} is not one of {KINDS}")
        if self.link not in LINKS:
            raise ModelFormatError(f"link {self.link!r} is not one of {LINKS}")
        if (self.kind == "ngram") != (self.ngram is not None) or (self.kind == "embedding") != bool(self.dimensions):
            raise ModelFormatError(f"a {self.kind} model needs "
                                   f"{'ngram settings' if self.kind == 'ngram' else 'dimensions'} (and only those)")
        size = self.ngram.buckets if self.ngram else self.dimensions
        if len(self.index) != len(self.weight):
            raise ModelFormatError(f"{len(self.index)} indexes but {len(self.weight)} weights")
        if len(self.index) and (self.index[0] < 0 or self.index[-1] >= size or np.any(np.diff(self.index) <= 0)):
            raise ModelFormatError(f"indexes must be sorted, unique and in [0, {size})")
        if not (np.isfinite(self.bias) and np.all(np.isfinite(self.weight))):
            raise ModelFormatError("weights and bias must be finite numbers")

    @classmethod
    def from_dense(cls, kind: str, link: str, bias: float, weights: np.ndarray, **kwargs: Any) -> "ClassifierModel":
        """A model from a dense weight vector (only the non-zero weights are kept)."""
        weights = np.asarray(weights, dtype=np.float32).ravel()
        index = np.flatnonzero(weights).astype(np.int64)
        return cls(kind, link, float(bias), index, weights[index], **kwargs)

    # -- scoring --------------------------------------------------------------------------
    def dense_weights(self) -> np.ndarray:
        """All weights as one float64 vector (zeros where none is stored)."""
        dense = np.zeros(self.ngram.buckets if self.ngram else self.dimensions, dtype=np.float64)
        dense[self.index] = self.weight
        return dense

    def apply_link(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z)) if self.link == "logistic" else z

    # -- file format ----------------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        """The JSON header without its content hash."""
        head: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                                "link": self.link, "bias": self.bias,
                                # through JSON, so the hash is the same before and after a round trip
                                "training": json.loads(json.dumps(self.training, sort_keys=True))}
        if self.ngram is not None:
            head["ngram"] = {"buckets": self.ngram.buckets, "max_ngram": self.ngram.max_ngram,
                             "tokens": TOKEN_SEPARATORS, "lowercase": True, "hash": "xxh64-fmix64-v1",
                             "values": "l2-normalized-counts"}
        else:
            head["embedding"] = {"dimensions": self.dimensions, "column": "embedding"}
        return head

    def content_sha256(self) -> str:
        return _content_sha256(self.header(), self.index, self.weight)

    def to_table(self) -> pa.Table:
        """The model as its stored table (write it with any Parquet writer)."""
        head = {**self.header(), "content_sha256": self.content_sha256()}
        table = pa.table({"index": pa.array(self.index, pa.int64()), "weight": pa.array(self.weight, pa.float32())})
        return table.replace_schema_metadata({METADATA_KEY: json.dumps(head, sort_keys=True).encode()})

    @classmethod
    def from_table(cls, table: pa.Table) -> "ClassifierModel":
        """Read a stored model, checking its format, version and content hash.

        Raises:
            ModelFormatError: The table is not a tamis classifier, is of another format
                version, or its content does not match its hash; the message says which.
        """
        head = _header(table)
        index = table["index"].to_numpy().astype(np.int64) if table.num_rows else np.empty(0, np.int64)
        weight = table["weight"].to_numpy().astype(np.float32) if table.num_rows else np.empty(0, np.float32)
        stored = head.pop("content_sha256", None)
        actual = _content_sha256(head, index, weight)
        if stored != actual:
            raise ModelFormatError(f"content hash mismatch: the header says {stored}, the content hashes "
                                   f"to {actual} (the file was changed or damaged after it was written)")
        try:
            ngram = NgramFeatures(head["ngram"]["buckets"], head["ngram"]["max_ngram"]) if "ngram" in head else None
            dimensions = head["embedding"]["dimensions"] if "embedding" in head else None
            return cls(head["kind"], head["link"], float(head["bias"]), index, weight, ngram=ngram,
                       dimensions=dimensions, training=head.get("training") or {})
        except (KeyError, TypeError) as err:
            raise ModelFormatError(f"header lacks or mistypes {err}") from None


def _header(table: pa.Table) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    expected = (f"a {FORMAT} model (written by `tamis train-classifier`): columns index (int64) and "
                f"weight (float32), a JSON header in the Parquet schema metadata key {METADATA_KEY.decode()!r}")
    if raw is None:
        raise ModelFormatError(f"not a tamis classifier: no {METADATA_KEY.decode()!r} header "
                               f"(columns found: {table.column_names}); expected {expected}")
    try:
        head = json.loads(raw)
    except ValueError as err:
        raise ModelFormatError(f"the {METADATA_KEY.decode()!r} header is not JSON ({err}); "
                               f"expected {expected}") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise ModelFormatError(f"header format is {head.get('format') if isinstance(head, dict) else head!r}; "
                               f"expected {expected}")
    if head.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"format_version {head.get('format_version')!r}: this tamis reads version "
                               f"{FORMAT_VERSION} only; retrain with this version's `tamis train-classifier`")
    types = {"index": pa.int64(), "weight": pa.float32()}
    if any(table.schema.field(n).type != t for n, t in types.items() if n in table.column_names) \
            or set(types) - set(table.column_names):
        raise ModelFormatError(f"columns are {table.schema}; expected {expected}")
    return head


def _content_sha256(head: dict[str, Any], index: np.ndarray, weight: np.ndarray) -> str:
    digest = hashlib.sha256(json.dumps(head, sort_keys=True, separators=(",", ":")).encode())
    digest.update(np.ascontiguousarray(index, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(weight, dtype="<f4").tobytes())
    return digest.hexdigest()
