"""Embedding space end to end: kmeans -> semantic_dedup -> filter, through local Ray and store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators.embedding.kmeans import ClusterAssign, KMeansConfig
from operators.embedding.semantic_dedup import SemanticDedup, SemanticDedupConfig
from tests.conftest import demo_config
from tests.integration.conftest import read_output, read_rejected, run_config
from tests.support.embedding_vectors import doc_table, unit, with_near_copies

pytestmark = pytest.mark.integration

GROUPS, COPIES = 240, 120


def test_kmeans_then_semantic_dedup_keeps_one_document_per_planted_group(ray_local: None,
                                                                         tmp_path: Path) -> None:
    base = unit(np.random.default_rng(11).standard_normal((GROUPS, 64)).astype(np.float32))
    x, origin = with_near_copies(base, COPIES, 0.01, seed=12)  # copies: cos ~0.997 to their origin
    order = np.random.default_rng(13).permutation(len(x))
    x, origin = x[order], origin[order]
    table = doc_table(x, text=[f"document {i}" for i in range(len(x))], source=["web"] * len(x))
    for n, rows in enumerate((slice(0, 200), slice(200, len(x)))):
        pq.write_table(table[rows], tmp_path / f"in-{n}.parquet")

    raw = demo_config(store=str(tmp_path / "store"))
    raw["input"] = {"paths": [str(tmp_path / "in-*.parquet")], "format": "parquet"}
    kmeans = {"k": 6, "niter": 10, "seed": 3}
    raw["stages"] = [{"op": "kmeans", "config": kmeans},
                     {"op": "semantic_dedup", "config": {"eps": 0.02}},
                     {"op": "filter",
                      "config": {"rules": [{"keep": "dedup_semantic_keep", "reason": "dedup:semantic"}]}}]
    raw["execution"] = {"batch_rows": 64}  # batches of 64 rows; one checkpoint file per input file
    pipeline, state = run_config(tmp_path, raw, run_id="emb")

    output = read_output(pipeline, state)
    kept = set(output["id"].to_pylist())
    assert output.schema.field("embedding").type.list_size == 64
    # the expected keep set, computed in this process from the run's own centroids
    store = pipeline.spec.make_store()
    artifact = pa.concat_tables(pq.read_table(store.fs_path(k)) for k in store.list("stages")
                                if "kmeans.fit" in k and "/artifact/" in k)
    assigned = ClusterAssign(KMeansConfig(**kmeans), artifact)(table)
    expected = SemanticDedup(SemanticDedupConfig(eps=0.02))(assigned)
    assert kept == {i for i, k in zip(expected["id"].to_pylist(), expected["dedup_semantic_keep"].to_pylist()) if k}
    # and it is one document per planted group
    ids = table["id"].to_pylist()
    assert len(kept) == GROUPS
    assert sorted(origin[ids.index(i)] for i in kept) == list(range(GROUPS))
    rejected = read_rejected(pipeline)
    assert rejected.num_rows == COPIES and set(rejected["drop_reason"].to_pylist()) == {"dedup:semantic"}
    stages = {s["name"]: s for s in state["stages"]}
    assert stages["semantic_dedup"]["metrics"]["removed"] == COPIES
    assert stages["kmeans.fit"]["metrics"]["k"] == 6
    assert stages["kmeans.fit"]["metrics"]["threads"] == 2  # every CPU of the node (ray_local has 2), not 1


def test_semantic_dedup_with_a_target_removal_fraction_reports_eps_in_the_manifest(ray_local: None,
                                                                                    tmp_path: Path) -> None:
    import json

    x, _ = with_near_copies(unit(np.random.default_rng(31).standard_normal((200, 32)).astype(np.float32)),
                            100, 0.05, seed=32)
    table = doc_table(x, text=[f"document {i}" for i in range(len(x))], source=["web"] * len(x))
    pq.write_table(table, tmp_path / "in.parquet")
    raw = demo_config(store=str(tmp_path / "store"))
    raw["input"] = {"paths": [str(tmp_path / "in.parquet")], "format": "parquet"}
    raw["stages"] = [{"op": "kmeans", "config": {"k": 3, "niter": 5, "seed": 1}},
                     {"op": "semantic_dedup", "config": {"criterion": "ranked", "target_removal": 0.1}},
                     {"op": "filter",
                      "config": {"rules": [{"keep": "dedup_semantic_keep", "reason": "dedup:semantic"}]}}]
    pipeline, state = run_config(tmp_path, raw, run_id="target")
    stages = {s["name"]: s for s in state["stages"]}
    assert list(stages)[-4:] == ["semantic_dedup", "semantic_dedup.eps", "semantic_dedup.apply", "filter"]
    fitted = stages["semantic_dedup.eps"]["metrics"]
    assert 0 < fitted["semantic_eps"] < 1 and fitted["semantic_target_removal"] == 0.1
    removed = stages["semantic_dedup.apply"]["metrics"]["removed"]
    assert removed == fitted["semantic_planned_removed"] and 27 <= removed <= 30  # 10 % of 300, bin ties
    assert read_output(pipeline, state).num_rows == 300 - removed
    manifest = json.loads(Path(state["output"]["manifest"]).read_text())
    funnel = {f["stage"]: f for f in manifest["funnel"]}
    assert funnel["semantic_dedup.eps"]["metrics"]["semantic_eps"] == fitted["semantic_eps"]
