"""The incremental MinHash index over several runs: a later run removes near-copies of documents
an earlier run kept, the index version advances with each successful run, and rerunning a
finished run does not match it against its own documents."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from jobs.store import Store
from tests.integration.conftest import read_output, run_config

pytestmark = pytest.mark.integration

VOCABULARY = [f"w{i}" for i in range(3000)]


def write_jsonl(path: Path, docs: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def corpora(root: Path) -> tuple[Path, Path, set[str]]:
    """Run 1's documents, run 2's (near-copies of 15 of them, 5 far rewrites, 20 new), and the
    ids run 2 must remove."""
    rng = random.Random(5)
    texts = [" ".join(rng.choice(VOCABULARY) for _ in range(300)) for _ in range(60)]
    first = [{"id": f"a-{i:03d}", "text": t, "source": "web"} for i, t in enumerate(texts[:40])]
    second: list[dict[str, str]] = []
    for i in range(15):  # one word changed in 300: word 5-gram Jaccard about 0.97
        words = texts[i].split()
        words[150] = "changed"
        second.append({"id": f"b-copy-{i:03d}", "text": " ".join(words), "source": "web"})
    for i in range(15, 20):  # every other word changed: far below the threshold
        words = texts[i].split()
        second.append({"id": f"b-far-{i:03d}", "text": " ".join(w if j % 2 else "x" for j, w in enumerate(words)),
                       "source": "web"})
    second += [{"id": f"b-new-{i:03d}", "text": t, "source": "web"} for i, t in enumerate(texts[40:])]
    return (write_jsonl(root / "one" / "docs.jsonl", first), write_jsonl(root / "two" / "docs.jsonl", second),
            {f"b-copy-{i:03d}" for i in range(15)})


def config(store: Path, data: Path, index: dict[str, Any]) -> dict[str, Any]:
    return {"name": "incremental", "store": str(store),
            "input": {"paths": [str(data)], "format": "jsonl"},
            "stages": [{"op": "minhash_dedup", "config": {"index": index}},
                       {"op": "filter", "config": {"rules": [{"keep": "dedup_minhash_keep", "reason": "dedup:minhash"}]}}],
            "output": {"format": "parquet"}}


def ids(pipeline: Any, state: dict[str, Any]) -> set[str]:
    table = read_output(pipeline, state)
    return set(table["id"].to_pylist()) if table.num_columns else set()


def test_exact_index_across_runs(ray_local: None, tmp_path: Path) -> None:
    one, two, copies = corpora(tmp_path / "data")
    store = tmp_path / "store"
    index = {"name": "web"}
    p1, s1 = run_config(tmp_path, config(store, one, index), run_id="night-1")
    assert len(ids(p1, s1)) == 40
    assert s1["indexes"] == {"web": {"version": 1, "parent": 0, "added": 40, "documents": 40}}

    p2, s2 = run_config(tmp_path, config(store, two, index), run_id="night-2")
    kept = ids(p2, s2)
    assert kept == {f"b-far-{i:03d}" for i in range(15, 20)} | {f"b-new-{i:03d}" for i in range(20)}
    match = next(s for s in s2["stages"] if s["name"] == "minhash_dedup.index_match")
    assert match["info"]["index_version"] == 1 and match["info"]["index_documents"] == 40
    assert match["metrics"]["matched_pairs"] >= len(copies)
    assert s2["indexes"]["web"]["version"] == 2 and s2["indexes"]["web"]["documents"] == 65
    rejected = _rejected(Store(str(store)))
    assert {r["id"] for r in rejected if r["id"].startswith("b-")} == copies
    assert {r["dedup_minhash_cluster_id"] for r in rejected if r["id"].startswith("b-")} \
        == {f"a-{i:03d}" for i in range(15)}

    # rerunning night-2 pins the version before its own: same output, index unchanged
    p2b, s2b = run_config(tmp_path, config(store, two, index), run_id="night-2")
    assert ids(p2b, s2b) == kept and s2b["indexes"]["web"]["version"] == 2
    assert all(s["status"] == "cached" for s in s2b["stages"])

    # another run of the same documents now finds them all in the index
    p3, s3 = run_config(tmp_path, config(store, two, index), run_id="night-3")
    assert ids(p3, s3) == set()
    assert s3["indexes"]["web"]["version"] == 3 and s3["indexes"]["web"]["added"] == 0


def test_bloom_index_across_runs(ray_local: None, tmp_path: Path) -> None:
    one, two, copies = corpora(tmp_path / "data")
    store = tmp_path / "store"
    index = {"name": "web-bloom", "form": "bloom", "bloom_capacity": 10_000, "bloom_fp_rate": 1e-6}
    p1, s1 = run_config(tmp_path, config(store, one, index), run_id="b-1")
    assert len(ids(p1, s1)) == 40 and s1["indexes"]["web-bloom"]["documents"] == 40
    p2, s2 = run_config(tmp_path, config(store, two, index), run_id="b-2")
    assert ids(p2, s2) == {f"b-far-{i:03d}" for i in range(15, 20)} | {f"b-new-{i:03d}" for i in range(20)}
    assert s2["indexes"]["web-bloom"]["version"] == 2


def _rejected(store: Store) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    keys = [k for k in store.list("stages") if "/rejected/" in k and k.startswith("stages/filter-")]
    return [r for k in keys for r in pq.read_table(store.fs_path(k)).to_pylist()]
