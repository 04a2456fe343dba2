"""Chained read/map stages (jobs/chain.py) through a real local Ray: the same files, waves and
output as one stage at a time, and a resume that starts the chain where a wave stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import demo_config
from tests.integration.conftest import read_output, run_config

pytestmark = pytest.mark.integration

CHAIN = ["read", "heuristics", "slow_copy", "filter"]


def chain_config(store: Path, chained: bool) -> dict[str, Any]:
    raw = demo_config(store=str(store), plugins=["tests.support.slow_ops"])
    raw["stages"] = [{"op": "heuristics"}, {"op": "slow_copy", "config": {"seconds_per_batch": 0}},
                     {"op": "filter", "config": {"rules": [{"keep": "quality_word_count >= 50"}]}}]
    # one wave per sample file (4), several part files per wave
    raw["execution"] = {"wave_mb": 0.05, "part_rows": 40, "batch_rows": 40, "chain_maps": chained}
    return raw


def commits(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in (store / "stages").rglob("_COMMIT.json"))


def wave_commits(store: Path, stage: str) -> list[Path]:
    return sorted(p for p in (store / "stages").glob(f"{stage}-*/wave-*/_COMMIT.json"))


def stage_commit(store: Path, stage: str) -> Path:
    [path] = (store / "stages").glob(f"{stage}-*/_COMMIT.json")
    return path


def messages(state: dict[str, Any], stage: str, word: str) -> list[str]:
    return [e["msg"] for e in state["events"] if e["msg"].startswith(f"{stage}: wave") and word in e["msg"]]


def test_chained_and_one_at_a_time_write_the_same_waves_and_output(ray_local: None, tmp_path: Path) -> None:
    chained, alone = tmp_path / "chained", tmp_path / "alone"
    pipeline, state = run_config(tmp_path, chain_config(chained, True), run_id="c")
    other, state_alone = run_config(tmp_path, chain_config(alone, False), run_id="c")
    chained_message = f"{' -> '.join(CHAIN)}: chained, each wave streams through all of them"
    assert chained_message in [e["msg"] for e in state["events"]]
    assert not any(": chained, " in e["msg"] for e in state_alone["events"])

    assert [s["name"] for s in state["stages"]] == CHAIN
    for name in CHAIN:
        assert len(wave_commits(chained, name)) == 4
    assert commits(chained) == commits(alone)  # the same wave and stage names either way
    summary = lambda st: [(s["name"], s["rows_in"], s["rows_out"], s["dropped"]) for s in st["stages"]]  # noqa: E731
    assert summary(state) == summary(state_alone)
    output = read_output(pipeline, state)
    assert output.num_rows > 0 and output.equals(read_output(other, state_alone))


def test_a_rerun_starts_the_chain_at_the_first_stage_without_a_wave_commit(ray_local: None, tmp_path: Path) -> None:
    store = tmp_path / "store"
    pipeline, first = run_config(tmp_path, chain_config(store, True), run_id="c")
    expected = read_output(pipeline, first)

    # as if the driver died after read and heuristics committed the last wave, before the rest
    for name in CHAIN:
        stage_commit(store, name).unlink()
    for name in ("slow_copy", "filter"):
        wave_commits(store, name)[-1].unlink()
    pipeline, state = run_config(tmp_path, chain_config(store, True), run_id="c")
    for name in ("read", "heuristics"):
        assert len(messages(state, name, "skipped")) == 4, state["events"]
    for name in ("slow_copy", "filter"):
        assert len(messages(state, name, "skipped")) == 3 and len(messages(state, name, "committed (")) == 1
    assert read_output(pipeline, state).equals(expected)

    # one stage at a time, a map stage after a committed one follows its waves by name
    stage_commit(store, "filter").unlink()
    wave_commits(store, "filter")[0].unlink()
    pipeline, state = run_config(tmp_path, chain_config(store, False), run_id="c")
    status = {s["name"]: s["status"] for s in state["stages"]}
    assert [status[n] for n in CHAIN] == ["cached", "cached", "cached", "committed"]
    assert len(messages(state, "filter", "skipped")) == 3 and len(messages(state, "filter", "committed (")) == 1
    assert read_output(pipeline, state).equals(expected)


def test_actor_stages_start_once_for_all_waves_and_each_wave_commits(ray_local: None, tmp_path: Path) -> None:
    """Every wave of a chain runs in one Ray Data job: an actor stage (a GPU model) starts
    once per actor, not once per wave, and each wave is still committed on its own."""
    inits = tmp_path / "inits"
    inits.mkdir()
    raw = demo_config(store=str(tmp_path / "store"), plugins=["tests.support.slow_ops"])
    raw["stages"] = [{"op": "count_inits", "config": {"init_dir": str(inits)}}]
    raw["execution"] = {"wave_mb": 0.1}  # the sample's four files, one wave each
    pipeline, state = run_config(tmp_path, raw, run_id="actors")
    stage = next(s for s in state["stages"] if s["name"] == "count_inits")
    assert stage["waves_total"] == 4 and stage["rows_out"] == 488
    assert 1 <= len(list(inits.iterdir())) <= 2  # the pool's actors (2 CPUs), not one or more per wave
    store = pipeline.spec.make_store()
    waves = [k for k in store.list("stages") if k.startswith("stages/count_inits-") and k.endswith("/_COMMIT.json")]
    assert len(waves) == 5  # four wave commits and the stage's


def test_the_output_is_written_wave_by_wave_while_the_last_stage_runs(ray_local: None, tmp_path: Path) -> None:
    store = tmp_path / "store"
    raw = chain_config(store, True)
    raw["output"] = {"target_shard_mb": 0.01}  # shards of about 10 KiB: several per wave
    pipeline, state = run_config(tmp_path, raw, run_id="w")
    events = [e["msg"] for e in state["events"]]
    written = [n for n, m in enumerate(events) if m.startswith("output: ") and "while the stage runs" in m]
    last_commit = max(n for n, m in enumerate(events) if m.startswith("filter: wave ") and "committed" in m)
    assert written and written[0] < last_commit  # shards began before the last wave committed
    manifest = json.loads((Path(state["output"]["manifest"])).read_text())
    names = [f["path"] for f in manifest["files"]]
    assert names == [f"part-{n:05d}.parquet" for n in range(len(names))] and len(names) > 4
    assert manifest["rows_out"] == sum(f["rows"] for f in manifest["files"]) == state["stages"][-1]["rows_out"]
    # no shard far below the target but the last: short ones are held back for the next wave
    sizes = [f["bytes"] for f in manifest["files"]]
    assert len(sizes) > 1 and min(sizes[:-1]) > 0.3 * 0.01 * 2**20
    early = read_output(pipeline, state).sort_by("id")
    # the same stages, an output config of its own: every stage reused, the output written after them
    raw["output"] = {"target_shard_mb": 64}
    again, state_again = run_config(tmp_path, raw, run_id="w2")
    assert all(s["status"] == "cached" for s in state_again["stages"])
    assert not any("while the stage runs" in e["msg"] for e in state_again["events"])
    assert read_output(again, state_again).sort_by("id").equals(early)
