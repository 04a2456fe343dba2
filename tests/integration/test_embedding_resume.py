"""embed -> kmeans -> semantic_dedup -> filter: the driver killed (SIGKILL) after k-means,
before semantic dedup; the rerun reuses the embeddings and the centroids, and its output
equals an uninterrupted run's. `tamis run` as a subprocess, the real bundled model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE, demo_config, write_config
from tests.integration.test_resume import finish, kill_driver_when, output_table, run_json, tamis
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration


def short_documents(path: Path, count: int = 120) -> Path:
    """The sample's first documents cut to 300 characters (the CPU model is slow on long ones)."""
    docs: list[dict[str, Any]] = []
    for source in sorted(SAMPLE.glob("*.jsonl.gz")):
        good = []
        with gzip.open(source, "rb") as f:
            for line in f:  # the sample plants broken lines on purpose: skip them here
                try:
                    doc = json.loads(line.decode("utf-8"))
                except ValueError:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("text"), str) and doc["text"].strip():
                    good.append(doc)
        docs += good[:count // 4]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for doc in docs:
            f.write(json.dumps({**doc, "text": doc["text"][:300]}) + "\n")
    return path


def embedding_config(store: Path, data: Path, seconds_per_batch: float) -> dict[str, Any]:
    raw = demo_config(store=str(store), plugins=["tests.support.slow_ops"])
    raw["input"]["paths"] = [str(data)]
    raw["stages"] = [
        {"op": "embed", "config": {"dtype": "float32"}},
        {"op": "kmeans", "config": {"k": 3, "niter": 5, "seed": 7}},
        {"op": "slow_copy", "config": {"seconds_per_batch": seconds_per_batch}},
        {"op": "semantic_dedup", "config": {"eps": 0.15}},
        {"op": "filter", "config": {"rules": [{"keep": "dedup_semantic_keep", "reason": "dedup:semantic"}]}},
    ]
    raw["execution"] = {"batch_rows": 20}
    return raw


def test_driver_killed_between_kmeans_and_semantic_dedup_reuses_the_embeddings(tmp_path: Path) -> None:
    data = short_documents(tmp_path / "short.jsonl.gz")
    store = tmp_path / "store"
    config = write_config(tmp_path / "emb.yaml", embedding_config(store, data, 1.0))
    def past_kmeans(state: dict[str, Any]) -> bool:
        status = {s["name"]: s["status"] for s in state["stages"]}
        return status.get("kmeans.fit") == "committed" and status.get("slow_copy") == "running"

    proc = tamis("run", str(config), "--run-id", "e1")
    killed = {s["name"]: s["status"] for s in kill_driver_when(proc, store, "e1", past_kmeans, 600,
                                                                 "getting past k-means")["stages"]}
    assert killed["semantic_dedup"] == "pending" and killed["embed.encode"] == "committed", killed

    finish(tamis("run", str(config), "--run-id", "e1"), timeout=600)
    state = run_json(store, "e1")
    status = {s["name"]: s["status"] for s in state["stages"]}
    # nothing before k-means ran again: embeddings and centroids came from the store
    for name in ("read", "embed.tokenize", "embed.encode", "kmeans.fit"):
        assert status[name] == "cached", status
    assert status["semantic_dedup"] == status["filter"] == "committed"

    reference_store = tmp_path / "reference"
    reference = write_config(tmp_path / "ref.yaml", embedding_config(reference_store, data, 0.0))
    run_serially(reference, "e1")  # never interrupted, in this process without Ray
    resumed, uninterrupted = output_table(store, "e1"), output_table(reference_store, "e1")
    assert 0 < resumed.num_rows < 120  # some near-copies among the sample's short pages
    assert resumed.equals(uninterrupted)
