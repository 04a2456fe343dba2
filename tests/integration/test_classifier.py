"""classifier_score end to end: `tamis train-classifier` writes a model to the store, a pipeline
names it by URI, and held-out documents of a planted set score by class (real local Ray).

The planted set is from ../shared/data/devdocs.jsonl.gz: positives are Django's documentation,
negatives SQLite's and git's (different vocabularies and styles), with 5% of the training
labels swapped as noise; held-out documents are scored by the pipeline.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import cli
from jobs.store import S3Options, Store
from tests.integration.conftest import read_output, run_config

pytestmark = pytest.mark.integration

POSITIVE = ("python-django-doc",)
NEGATIVE = ("sqlite3-doc", "git-doc")
S3_KEYS = {"endpoint_url": None, "region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"}


def planted(devdocs: Path, train: int, held: int, max_chars: int) -> dict[str, list[dict[str, Any]]]:
    """``train`` positive and negative training documents (5% of labels swapped), ``held`` of each held out."""
    with gzip.open(devdocs, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    rng = random.Random(7)
    pos = [d for d in docs if d["source"] in POSITIVE]
    neg = [d for d in docs if d["source"] in NEGATIVE]
    rng.shuffle(pos)
    rng.shuffle(neg)
    cut = [{"id": d["id"], "text": d["text"][:max_chars], "source": d["source"]} for d in pos + neg]
    pos, neg = cut[:len(pos)], cut[len(pos):]
    noise = train // 20
    return {"positive": pos[noise:train] + neg[:noise], "negative": neg[noise:train] + pos[:noise],
            "held": pos[train:train + held] + neg[train:train + held]}


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def auc(labels: list[bool], scores: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = np.array([s for s, y in zip(scores, labels) if y])
    neg = np.array([s for s, y in zip(scores, labels) if not y])
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))


def held_out_auc(output: pa.Table, column: str = "quality_classifier_score") -> float:
    return auc([s in POSITIVE for s in output["source"].to_pylist()], output[column].to_pylist())


def classifier_stage(state: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in state["stages"] if s["op"] == "classifier_score")


def train(*args: str) -> str:
    """`tamis train-classifier ARGS` in this process; what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # not capsys: Ray's threads log to the real stderr after the test
        assert cli.main(["train-classifier", *args]) == 0
    printed = printed.getvalue()
    assert "validation:" in printed and "AUC" in printed
    return printed


def test_ngram_classifier_through_s3(ray_local: None, s3_endpoint: str, shared_devdocs: Path, tmp_path: Path) -> None:
    data = planted(shared_devdocs, train=300, held=100, max_chars=3000)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for bucket in ("corpus", "models"):
        client.create_bucket(Bucket=bucket)
    for name in ("positive", "negative", "held"):
        client.put_object(Bucket="corpus", Key=f"{name}/part-0.jsonl", Body=jsonl(data[name]))

    model = "s3://models/quality/dclm-like.parquet"
    printed = train("--positive", "s3://corpus/positive/*.jsonl", "--negative", "s3://corpus/negative/",
                    "--out", model, "--endpoint-url", s3_endpoint, "--seed", "1")
    print(printed)
    options = {**S3_KEYS, "endpoint_url": s3_endpoint}
    raw = {"name": "classify", "store": "s3://corpus/store", "store_options": options,
           "input": {"paths": ["s3://corpus/held/*.jsonl"]},
           "stages": [{"op": "classifier_score", "config": {"model": model}}]}
    pipeline, state = run_config(tmp_path, raw, run_id="classify")
    output = read_output(pipeline, state)
    assert output.num_rows == 200
    score = held_out_auc(output)
    print(f"held-out AUC through the pipeline (ngram): {score:.4f}")
    assert score > 0.95

    # the run's store keeps the exact model it scored with; run.json records its hash
    stage = classifier_stage(state)
    sha = stage["info"]["model_sha256"]
    store = Store("s3://corpus/store", S3Options(**options))
    assert store.exists(f"models/{sha}.parquet")
    assert stage["info"]["model"] == model and stage["info"]["model_kind"] == "ngram"

    # the same bytes under another URI: nothing recomputes
    client.copy_object(Bucket="models", Key="elsewhere/copy.parquet",
                       CopySource={"Bucket": "models", "Key": "quality/dclm-like.parquet"})
    _, again = run_config(tmp_path, raw, run_id="classify",
                          overrides=["stages.0.config.model=s3://models/elsewhere/copy.parquet"])
    assert {s["status"] for s in again["stages"]} == {"cached"}

    # retraining (another C) writes new bytes at the same URI: scoring re-runs, reading does not
    train("--positive", "s3://corpus/positive/", "--negative", "s3://corpus/negative/",
          "--out", model, "--endpoint-url", s3_endpoint, "--c", "1")
    _, retrained = run_config(tmp_path, raw, run_id="classify")
    assert retrained["stages"][0]["status"] == "cached"
    assert classifier_stage(retrained)["status"] == "committed"
    assert classifier_stage(retrained)["fingerprint"] != stage["fingerprint"]


def test_missing_model_fails_the_run_naming_the_uri(ray_local: None, tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "a", "text": "hello", "source": "s"}) + "\n")
    missing = str(tmp_path / "none.parquet")
    raw = {"name": "nomodel", "store": str(tmp_path / "store"), "input": {"paths": [str(tmp_path / "in.jsonl")]},
           "stages": [{"op": "classifier_score", "config": {"model": missing}}]}
    with pytest.raises(ValueError, match=f"model {missing} not found; train one with `tamis train-classifier"):
        run_config(tmp_path, raw, run_id="nomodel")


def test_embedding_classifier_on_an_embedding_column(ray_local: None, shared_devdocs: Path,
                                                     tmp_path: Path) -> None:
    from jobs.train import embed_texts

    data = planted(shared_devdocs, train=60, held=30, max_chars=500)  # MiniLM reads 256 word pieces at most
    names = ("positive", "negative", "held")
    vectors = embed_texts([r["text"] for name in names for r in data[name]])  # one call: one model load
    for name in names:
        rows = data[name]
        embeddings, vectors = vectors[:len(rows)], vectors[len(rows):]
        table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows],
                          "source": [r["source"] for r in rows],
                          "embedding": pa.array(list(embeddings), pa.list_(pa.float32(), embeddings.shape[1]))})
        pq.write_table(table, tmp_path / f"{name}.parquet")

    model = str(tmp_path / "models" / "edu-like.parquet")
    printed = train("--kind", "embedding", "--positive", str(tmp_path / "positive.parquet"),
                    "--negative", str(tmp_path / "negative.parquet"), "--out", model)
    print(printed)
    raw = {"name": "embedded", "store": str(tmp_path / "store"),
           "input": {"paths": [str(tmp_path / "held.parquet")], "format": "parquet"},
           "stages": [{"op": "classifier_score",
                       "config": {"model": model, "input": "embedding", "column": "quality_edu_score"}}]}
    pipeline, state = run_config(tmp_path, raw, run_id="embedded")
    output = read_output(pipeline, state)
    assert output.num_rows == 60
    score = held_out_auc(output, "quality_edu_score")
    print(f"held-out AUC through the pipeline (embedding): {score:.4f}")
    assert score > 0.95
    assert classifier_stage(state)["info"]["model_kind"] == "embedding"
