"""A fit stage: documents pass through, its artifact reaches the operator that uses it."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.parts import read_part
from tests.conftest import demo_config
from tests.integration.conftest import read_output, run_config

pytestmark = pytest.mark.integration


def test_fit_artifact_feeds_a_later_map(ray_local: None, tmp_path: Path) -> None:
    raw = demo_config(store=str(tmp_path / "store"), plugins=["tests.support.slow_ops"])
    raw["stages"] = [{"op": "heuristics"}, {"op": "test_word_totals"}, {"op": "test_word_share"}]
    pipeline, state = run_config(tmp_path, raw, run_id="fit")
    fit = next(s for s in state["stages"] if s["name"] == "test_word_totals")
    assert fit["rows_in"] == fit["rows_out"] == state["stages"][0]["rows_out"]

    output = read_output(pipeline, state)
    words: dict[str, int] = defaultdict(int)
    for source, count in zip(output["source"].to_pylist(), output["quality_word_count"].to_pylist()):
        words[source] += count
    for source, count, share in zip(output["source"].to_pylist(), output["quality_word_count"].to_pylist(),
                                    output["test_word_share"].to_pylist()):
        assert share == pytest.approx(count / words[source])

    store = pipeline.spec.make_store()
    artifacts = [k for k in store.list("stages") if "/artifact/" in k]
    assert len(artifacts) == 1
    artifact = pq.read_table(store.fs_path(artifacts[0]))
    assert dict(zip(artifact["source"].to_pylist(), artifact["words"].to_pylist())) == dict(words)


def test_stateful_operator_runs_in_long_lived_actors(ray_local: None, tmp_path: Path) -> None:
    raw = demo_config(store=str(tmp_path / "store"), plugins=["tests.support.slow_ops"])
    raw["stages"] = [{"op": "test_actor_tag"}]
    raw["execution"] = {"part_rows": 50, "batch_rows": 25}
    pipeline, state = run_config(tmp_path, raw, run_id="actors")
    output = read_output(pipeline, state)
    assert output.num_rows == state["stages"][0]["rows_out"]
    pids = set(output["test_actor_pid"].to_pylist())
    assert 1 <= len(pids) <= 4  # a pool of actors, not a process per task
    # an actor's state outlives one call: some actor saw more batches than one file holds
    assert max(output["test_actor_batches"].to_pylist()) > 2
    # each batch carries a unique (actor, counter) pair; the summed metric counts them all once
    tag = next(s for s in state["stages"] if s["name"] == "test_actor_tag")
    batches = set(zip(output["test_actor_pid"].to_pylist(), output["test_actor_batches"].to_pylist()))
    assert tag["metrics"]["batches"] == len(batches)


def test_quantile_ranks_per_source_and_a_new_threshold_reruns_only_the_filter(ray_local: None,
                                                                              tmp_path: Path) -> None:
    raw = demo_config(store=str(tmp_path / "store"))
    raw["stages"] = [{"op": "heuristics"},
                     {"op": "quantiles", "config": {"columns": ["quality_word_count"], "by": "source"}},
                     {"op": "filter", "config": {"expr": "quality_word_count_rank > 0.5"}}]
    pipeline, state = run_config(tmp_path, raw, run_id="q")
    rejected = state["stages"][-1]["dropped"]
    assert set(rejected) == {"quality:word_count_rank"}
    # small groups rank exactly: the share of the source's documents with at most that count
    store = pipeline.spec.make_store()
    rank = next(s for s in state["stages"] if s["name"] == "quantiles.rank")
    commit = store.read_json(f"stages/quantiles.rank-{rank['fingerprint']}/_COMMIT.json")
    ranked = pa.concat_tables([read_part(store, f["key"]) for f in commit["files"]])
    counts: dict[str, list[int]] = defaultdict(list)
    for source, count in zip(ranked["source"].to_pylist(), ranked["quality_word_count"].to_pylist()):
        counts[source].append(count)
    for source, count, got in zip(ranked["source"].to_pylist(), ranked["quality_word_count"].to_pylist(),
                                  ranked["quality_word_count_rank"].to_pylist()):
        assert got == pytest.approx(sum(c <= count for c in counts[source]) / len(counts[source]))
    kept = set(read_output(pipeline, state)["id"].to_pylist())
    assert kept == {i for i, r in zip(ranked["id"].to_pylist(), ranked["quality_word_count_rank"].to_pylist())
                    if r > 0.5}
    assert len(counts) > 1

    raw["stages"][2]["config"]["expr"] = "quality_word_count_rank > 0.9"
    _, again = run_config(tmp_path, raw, run_id="q")
    status = {s["name"]: s["status"] for s in again["stages"]}
    assert status["quantiles.fit"] == status["quantiles.rank"] == "cached"
    assert status["filter"] == "committed"
    assert again["stages"][-1]["rows_out"] < state["stages"][-1]["rows_out"]
