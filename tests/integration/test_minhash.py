"""minhash_dedup through Ray and the store: the exact expected keep set, and resume after a
driver kill between the edges and the components."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from operators.dedup import minhash_math as mm
from operators.dedup.lsh import LshComponents
from operators.dedup.minhash_config import COMPONENT, MinhashDedupConfig, verification_sets
from tests.conftest import REPO, demo_config, write_config
from tests.integration.conftest import read_output, read_rejected, run_config
from tests.integration.test_resume import finish, output_table, run_json
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration

THRESHOLD = 0.7


def minhash_config(store: Path, **extra: Any) -> dict[str, Any]:
    raw = demo_config(store=str(store), **extra)
    raw["stages"] = [{"op": "minhash_dedup", "config": {"threshold": THRESHOLD}},
                     {"op": "filter", "config": {"rules": [{"keep": "dedup_minhash_keep", "reason": "dedup:minhash"}]}}]
    return raw


def brute_force_removals(docs: pa.Table, max_hops: int = 2) -> set[str]:
    """Greedy in id order per source: removed iff Jaccard >= threshold with an earlier kept
    doc, or else with an earlier removed one fewer than ``max_hops`` links from its keeper."""
    config = MinhashDedupConfig(threshold=THRESHOLD)
    docs = docs.sort_by([("source", "ascending"), ("id", "ascending")])
    sets = verification_sets(docs["text"], config)
    removed: set[str] = set()
    kept: dict[str, list[int]] = {}
    via: dict[str, list[tuple[int, int]]] = {}  # removed docs a chain may pass through, with their hops
    for i, (doc_id, source) in enumerate(zip(docs["id"].to_pylist(), docs["source"].to_pylist())):
        mine, chains = kept.setdefault(source, []), via.setdefault(source, [])
        like = lambda k: mm.jaccard(sets.doc(i), sets.doc(k)) >= THRESHOLD  # noqa: E731
        hops = 1 if any(like(k) for k in mine) else next((h + 1 for k, h in chains if like(k)), None)
        if hops is None:
            mine.append(i)
            continue
        removed.add(doc_id)
        if hops < max_hops:
            chains.append((i, hops))
    return removed


def test_keep_set_equals_brute_force(ray_local: None, tmp_path: Path, sample_expected: dict[str, Any]) -> None:
    pipeline, state = run_config(tmp_path, minhash_config(tmp_path / "store"), run_id="mh")
    output = read_output(pipeline, state)
    rejected = read_rejected(pipeline).to_pylist()
    removed = {r["id"] for r in rejected if r["drop_reason"] == "dedup:minhash"}
    everything = pa.concat_tables([output.select(["id", "text", "source"]),
                                   _rejected_docs(pipeline, "dedup:minhash")])
    assert removed == brute_force_removals(everything)
    exact = {c["id"] for c in sample_expected["exact_duplicate_copies"]}
    assert exact <= removed  # exact copies are near-duplicates too
    info = next(s for s in state["stages"] if s["name"] == "minhash_dedup.signature")["info"]
    assert info["bands"] * info["rows"] <= info["num_perm"]
    keep = next(s for s in state["stages"] if s["name"] == "minhash_dedup.keep")["metrics"]
    assert keep["confirmed_pairs"] == len(removed)


def _rejected_docs(pipeline: Any, reason: str) -> pa.Table:
    store = pipeline.spec.make_store()
    keys = [k for k in store.list("stages") if "/rejected/" in k and k.startswith("stages/filter-")]
    table = pa.concat_tables([pq.read_table(store.fs_path(k)) for k in keys])
    return table.filter(pa.compute.equal(table["drop_reason"], reason)).select(["id", "text", "source"])


def test_driver_killed_between_edges_and_components_resumes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "mh.yaml", minhash_config(store, plugins=["tests.support.slow_fit"]))
    env = dict(os.environ, TAMIS_TEST_SLOW_FIT="60")
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(config)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        state = run_json(store, "demo")
        stages = {s["name"]: s["status"] for s in state["stages"]} if state else {}
        if stages.get("minhash_dedup.components") == "running":
            break
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.1)
    else:
        pytest.fail("never reached the components stage")
    assert stages["minhash_dedup.buckets"] == "committed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    finish(subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    status = {s["name"]: s["status"] for s in run_json(store, "demo")["stages"]}
    assert [status[s] for s in ("read", "minhash_dedup.signature", "minhash_dedup.buckets")] == ["cached"] * 3
    assert status["minhash_dedup.components"] == "committed"

    reference = tmp_path / "reference"  # uninterrupted, in this process without Ray
    run_serially(write_config(tmp_path / "ref.yaml", minhash_config(reference)), "demo")
    assert output_table(store, "demo").equals(output_table(reference, "demo"))


def test_distributed_components_equal_single_worker_and_resume_by_round(ray_local: None, tmp_path: Path) -> None:
    raw = minhash_config(tmp_path / "rounds")
    # loose banding: many overlapping buckets, so the candidate graph is not already stars
    raw["stages"] = [{"op": "minhash_dedup", "config": {"threshold": THRESHOLD, "lsh": {"bands": 56, "rows": 2},
                                                        "components": {"method": "distributed"}}}]
    pipeline, state = run_config(tmp_path, raw, run_id="rounds")
    store = pipeline.spec.make_store()
    stage = next(x for x in state["stages"] if x["name"] == "minhash_dedup.components")
    config = MinhashDedupConfig(**raw["stages"][0]["config"])
    edges = _buckets_edges(store, state)
    single = LshComponents(config).fit(iter([edges]))
    assert _artifact(store, stage) == sorted(single.to_pylist(), key=lambda r: r["id"])
    assert stage["metrics"]["candidate_edges"] == edges.num_rows
    assert stage["metrics"]["candidate_components"] == len(set(single[COMPONENT].to_pylist()))
    prefix = f"stages/minhash_dedup.components-{stage['fingerprint']}"
    rounds = sorted({k.split("/")[2] for k in store.list(prefix) if "/round-" in k})
    assert any("small_star" in r for r in rounds)  # the rounds really iterated
    assert stage["metrics"]["component_rounds"] >= 3

    # lose everything after the first round (as a killed driver would), then rerun
    for key in store.list(prefix):
        if "/round-00000-" not in key:
            store.fs.delete_file(store.fs_path(key))
    _, again = run_config(tmp_path, raw, run_id="rounds-again")
    messages = [e["msg"] for e in again["events"]]
    assert any("round 0 (large_star) committed earlier, skipped" in m for m in messages)
    assert any("round 1 (small_star) committed:" in m for m in messages)
    assert _artifact(store, stage) == sorted(single.to_pylist(), key=lambda r: r["id"])


def _buckets_edges(store: Any, state: dict[str, Any]) -> pa.Table:
    stage = next(x for x in state["stages"] if x["name"] == "minhash_dedup.buckets")
    commit = store.read_json(f"stages/minhash_dedup.buckets-{stage['fingerprint']}/_COMMIT.json")
    return pa.concat_tables([pq.read_table(store.fs_path(f["key"]), filesystem=store.fs)
                             for f in commit["artifact"]["files"]])


def _artifact(store: Any, stage: dict[str, Any]) -> list[dict[str, Any]]:
    commit = store.read_json(f"stages/minhash_dedup.components-{stage['fingerprint']}/_COMMIT.json")
    assert commit["artifact"]["by_file"]
    tables = [pq.read_table(store.fs_path(f["key"]), filesystem=store.fs) for f in commit["artifact"]["files"]]
    return sorted(pa.concat_tables(tables).to_pylist(), key=lambda r: r["id"])
