"""The demo pipeline end to end on a local Ray, checked against the sample's ground truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import demo_config
from tests.integration.conftest import read_output, read_rejected, run_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("demo")
    pipeline, state = run_config(tmp, demo_config(store=str(tmp / "store")), run_id="demo")
    return {"tmp": tmp, "pipeline": pipeline, "state": state}


def test_broken_rows_rejected_with_their_reasons(demo_run: dict[str, Any], sample_expected: dict[str, Any]) -> None:
    read = demo_run["state"]["stages"][0]
    expected = {f"read:{kind}": len(rows) for kind, rows in sample_expected["broken_rows"].items()}
    assert read["dropped"] == expected
    assert read["rows_in"] == sample_expected["total_lines"]


def test_exact_copies_removed_and_originals_kept(demo_run: dict[str, Any], sample_expected: dict[str, Any]) -> None:
    output_ids = set(read_output(demo_run["pipeline"], demo_run["state"])["id"].to_pylist())
    rejected = read_rejected(demo_run["pipeline"]).to_pylist()
    dedup_removed = {r["id"] for r in rejected if r["drop_reason"] == "dedup:exact"}
    copies = sample_expected["exact_duplicate_copies"]
    # the keeper is the smallest id of each group: the original, whose id sorts before "<id>-dupN"
    assert dedup_removed == {c["id"] for c in copies}
    cross_source = {c["id"] for c in sample_expected["cross_source_copies"]}
    assert not cross_source & dedup_removed  # scope: source keeps copies in other sources


def test_nothing_lost_nothing_duplicated(demo_run: dict[str, Any], sample_expected: dict[str, Any]) -> None:
    output = read_output(demo_run["pipeline"], demo_run["state"])
    rejected = read_rejected(demo_run["pipeline"])
    out_ids = output["id"].to_pylist()
    rej_ids = rejected["id"].to_pylist()
    assert len(out_ids) == len(set(out_ids))
    assert len(rej_ids) == len(set(rej_ids))
    assert not set(out_ids) & set(rej_ids)
    assert len(out_ids) + len(rej_ids) == sample_expected["total_lines"]
    funnel = {s["name"]: s for s in demo_run["state"]["stages"]}
    assert funnel["filter"]["rows_out"] == len(out_ids)
    assert Counter(rejected["drop_reason"].to_pylist()) == Counter(
        {r: n for s in demo_run["state"]["stages"] for r, n in s["dropped"].items()})


def test_manifest_describes_the_output(demo_run: dict[str, Any]) -> None:
    manifest_path = Path(demo_run["state"]["output"]["manifest"])
    manifest = json.loads(manifest_path.read_text())
    assert manifest["rows_out"] == sum(f["rows"] for f in manifest["files"])
    assert manifest["rows_out"] == demo_run["state"]["output"]["rows"]
    assert [s["stage"] for s in manifest["funnel"]] == [s["name"] for s in demo_run["state"]["stages"]]
    names = {c["name"] for c in manifest["schema"]}
    assert {"id", "text", "source", "dedup_exact_keep", "quality_word_count"} <= names
    assert "drop_reason" not in names
    # the last stage (the filter) stores row files: the schema is the documents', as written
    first = manifest_path.parent / manifest["files"][0]["path"]
    written = pq.read_schema(first)
    assert manifest["schema"] == [{"name": f.name, "type": str(f.type)} for f in written]


def test_rerun_skips_everything(demo_run: dict[str, Any]) -> None:
    tmp = demo_run["tmp"]
    _, state = run_config(tmp, demo_config(store=str(tmp / "store")), run_id="demo")
    assert {s["status"] for s in state["stages"]} == {"cached"}
    assert any("up to date" in e["msg"] for e in state["events"])
    assert state["output"]["rows"] == demo_run["state"]["output"]["rows"]


def test_downstream_change_recomputes_only_downstream(demo_run: dict[str, Any]) -> None:
    tmp = demo_run["tmp"]
    pipeline, state = run_config(tmp, demo_config(store=str(tmp / "store")), run_id="demo",
                                 overrides=["stages.2.config.rules.1.keep=quality_word_count >= 1000"])
    status = {s["name"]: s["status"] for s in state["stages"]}
    assert status == {"read": "cached", "exact_dedup.hash": "cached", "exact_dedup.keep": "cached",
                      "heuristics": "cached", "filter": "committed"}
    assert state["output"]["rows"] < demo_run["state"]["output"]["rows"]
    assert min(read_output(pipeline, state)["quality_word_count"].to_pylist()) >= 1000


def test_output_path_rewrite_keeps_foreign_files(demo_run: dict[str, Any]) -> None:
    tmp = demo_run["tmp"]
    out = tmp / "curated"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    raw = demo_config(store=str(tmp / "store"), output={"path": str(out), "target_shard_mb": 1})
    run_config(tmp, raw, run_id="demo")
    raw["output"]["format"] = "jsonl"  # a new output fingerprint: shards are rewritten
    _, state = run_config(tmp, raw, run_id="demo")
    assert (out / "notes.txt").read_text() == "mine"
    manifest = json.loads((out / "_MANIFEST.json").read_text())
    shards = sorted(f["path"] for f in manifest["files"])
    assert shards and all(name.endswith(".jsonl.gz") for name in shards)  # no stale .parquet shards
    assert sorted(p.name for p in out.iterdir()) == sorted(["_MANIFEST.json", "notes.txt", *shards])
    assert state["output"]["rows"] == demo_run["state"]["output"]["rows"]
