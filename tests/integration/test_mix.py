"""configs/mix.yaml end to end on a local Ray: the plan realized, a kill between plan and
sample resumed with the plan reused, and a changed weight re-running only what it touches."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO, SAMPLE, write_config
from tests.integration.test_embedding_resume import short_documents
from tests.support.serial_ray import run_serially
from tests.integration.conftest import read_output, read_rejected, run_config
from tests.integration.test_resume import finish, kill_driver_when, run_json

pytestmark = pytest.mark.integration

MIX_STAGES = ("mix.plan", "mix.sample", "mix.shuffle")


def split_output(store: Path, run_id: str) -> pa.Table:
    """A run's output shards, every phase folder, in path order."""
    out = store / "runs" / run_id / "output"
    return pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*/part-*.parquet"))])


def mix_config(store: Path, **changes: Any) -> dict[str, Any]:
    raw = yaml.safe_load((REPO / "configs" / "mix.yaml").read_text())
    raw["store"] = str(store)
    raw["input"]["paths"] = [str(SAMPLE / "*.jsonl.gz")]
    raw.update(changes)
    return raw


def test_mix_realizes_its_plan_and_accounts_for_every_document(ray_local: None, tmp_path: Path) -> None:
    pipeline, state = run_config(tmp_path, mix_config(tmp_path / "store"))
    stages = {s["name"]: s for s in state["stages"]}
    plan, sample = stages["mix.plan"]["metrics"], stages["mix.sample"]["metrics"]
    output = read_output(pipeline, state)
    kept: Counter[str] = Counter()
    for phase, source, tokens in zip(output["mix_phase"].to_pylist(), output["source"].to_pylist(),
                                     output["mix_tokens"].to_pylist()):
        kept[f"{phase}:{source}"] += tokens
    longest = pc.max(output["mix_tokens"]).as_py()
    assert plan["planned_tokens"] == pytest.approx(500_000)
    weights = {"main": ({"python-django-doc": 0.5, "apache2-doc": 0.3, "sqlite3-doc": 0.2}, 420_000),
               "anneal": ({"python-django-doc": 0.3, "sqlite3-doc": 0.7}, 80_000)}
    for phase, (shares, budget) in weights.items():
        for source, weight in shares.items():
            group = f"{phase}:{source}"
            assert plan[f"group.{group}.target_tokens"] == pytest.approx(weight * budget)
            assert kept[group] == sample[f"group.{group}.tokens_out"]
            assert abs(kept[group] - plan[f"group.{group}.target_tokens"]) <= longest  # within one document
    assert not any(k.endswith(":git-doc") or k == "anneal:apache2-doc" for k in kept)
    # the anneal phase takes the best-scored pages of its sources
    anneal = output.filter(pc.equal(output["mix_phase"], "anneal"))
    main = output.filter(pc.equal(output["mix_phase"], "main"))
    assert pc.mean(anneal["quality_text_score"]).as_py() > pc.mean(main["quality_text_score"]).as_py()
    # each phase in its own folder, listed in the manifest
    manifest = json.loads(Path(state["output"]["manifest"]).read_text())
    assert manifest["split_by"] == ["mix_phase"]
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {
        "mix_phase=main": main.num_rows, "mix_phase=anneal": anneal.num_rows}
    # every document that reached mix.sample is in the output or rejected there, never both
    sampled_in = stages["mix.sample"]["rows_in"]
    rejected = read_rejected(pipeline)
    not_sampled = set(rejected.filter(pc.equal(rejected["drop_reason"], "mix:not_sampled"))["id"].to_pylist())
    assert len(not_sampled) + len(set(output["id"].to_pylist())) == sampled_in
    assert not_sampled.isdisjoint(output["id"].to_pylist())
    # each phase's shards are shuffled across sources: no long run of one source
    for phase in (main, anneal):
        runs = [len(list(g)) for _, g in itertools.groupby(phase["source"].to_pylist())]
        assert max(runs) < 15, runs


def test_a_changed_weight_reruns_only_the_plan_and_after(ray_local: None, tmp_path: Path) -> None:
    store = tmp_path / "store"
    run_config(tmp_path, mix_config(store), run_id="first")
    _, state = run_config(tmp_path, mix_config(store), run_id="second",
                          overrides=["stages.3.config.weights.sqlite3-doc=0.4"])
    status = {s["name"]: s["status"] for s in state["stages"]}
    assert {n for n, s in status.items() if s == "cached"} == {
        "read", "exact_dedup.hash", "exact_dedup.keep", "text_quality_score.score", "filter", "mix.tokens"}
    assert all(status[n] == "committed" for n in MIX_STAGES)


def test_driver_killed_between_plan_and_sample_resumes_with_the_plan(tmp_path: Path) -> None:
    store = tmp_path / "store"
    config = write_config(tmp_path / "mix.yaml", mix_config(store, plugins=["tests.support.slow_map"]))
    env = dict(os.environ, TAMIS_TEST_SLOW_MAP="60", TAMIS_TEST_SLOW_MAP_STAGE="mix.sample")
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(config), "--run-id", "m1"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    def statuses(state: dict[str, Any]) -> dict[str, str]:
        return {s["name"]: s["status"] for s in state["stages"]}

    killed = kill_driver_when(proc, store, "m1", lambda state: statuses(state).get("mix.sample") == "running",
                              240, "mix.sample starting")
    assert statuses(killed)["mix.plan"] == "committed"

    finish(subprocess.Popen([sys.executable, "-m", "jobs.cli", "run", str(config), "--run-id", "m1"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    status = {s["name"]: s["status"] for s in run_json(store, "m1")["stages"]}
    assert status["mix.plan"] == "cached" and status["mix.sample"] == "committed"
    # the same mix as a run that was never interrupted (in this process, without Ray)
    run_serially(write_config(tmp_path / "ref.yaml", mix_config(tmp_path / "ref")), "m1")
    resumed, uninterrupted = split_output(store, "m1"), split_output(tmp_path / "ref", "m1")
    assert resumed.sort_by([("id", "ascending"), ("mix_epoch", "ascending")]).equals(
        uninterrupted.sort_by([("id", "ascending"), ("mix_epoch", "ascending")]))
    assert resumed["id"].to_pylist() == uninterrupted["id"].to_pylist()  # and in the same order


@pytest.mark.parametrize("name", ["mix_quality", "mix_clusters"])
def test_mixes_over_derived_groups(ray_local: None, tmp_path: Path, name: str) -> None:
    """Quality quartiles by an expression over quantiles' ranks; k-means clusters (UniMax)
    over 160 short documents (embedding the whole sample on CPU took 98 s of CI)."""
    raw = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    raw["store"] = str(tmp_path / "store")
    raw["input"]["paths"] = [str(SAMPLE / "*.jsonl.gz")]
    if name == "mix_clusters":
        raw["input"]["paths"] = [str(short_documents(tmp_path / "short.jsonl.gz", 160))]
        raw["stages"][-1]["config"]["budget_tokens"] = 20_000
    pipeline, state = run_config(tmp_path, raw)
    plan = next(s for s in state["stages"] if s["name"] == "mix.plan")["metrics"]
    output = read_output(pipeline, state)
    groups = {k.split(".")[1] for k in plan if k.startswith("group.")}
    assert groups == ({"0", "1", "2", "3"} if name == "mix_quality" else {str(k) for k in range(8)})
    assert plan["planned_tokens"] == pytest.approx(raw["stages"][-1]["config"]["budget_tokens"])
    tokens: Counter[str] = Counter()
    label = (lambda r: str(int(r["quality_text_score_rank"] * 3.999 // 1))) if name == "mix_quality" \
        else (lambda r: str(r["cluster_id"]))
    for row in output.select([c for c in ("quality_text_score_rank", "cluster_id", "mix_tokens")
                              if c in output.column_names]).to_pylist():
        tokens[label(row)] += row["mix_tokens"]
    longest = pc.max(output["mix_tokens"]).as_py()
    for g in groups:
        assert abs(tokens[g] - plan[f"group.{g}.target_tokens"]) <= longest, (g, tokens[g])
        assert plan[f"group.{g}.epochs"] <= 3 + 1e-9
    assert set(tokens) <= groups


def test_a_budget_the_corpus_cannot_give_stops_at_the_plan_naming_the_stage(tmp_path: Path) -> None:
    config = write_config(tmp_path / "mix.yaml", mix_config(tmp_path / "store"))
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(config),
                           "--set", "stages.3.config.phases.0.budget_tokens=5e7",
                           "--set", "stages.3.config.budget_tokens=5.008e7"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("error: run mix failed at mix.plan (stages[3]): MixPlanError: the budget of 50,000,000 tokens cannot "
            "be met: at most") in proc.stderr, proc.stderr


def test_per_group_folders_and_a_blend_file_per_phase(ray_local: None, tmp_path: Path) -> None:
    raw = mix_config(tmp_path / "store")
    raw["stages"][3]["config"]["shuffle"] = False  # the trainer blends the groups instead
    raw["output"] = {"format": "parquet", "split_by": ["mix_phase", "source"], "weight_column": "mix_tokens"}
    pipeline, state = run_config(tmp_path, raw)
    out = Path(state["output"]["uri"])
    plan = next(s for s in state["stages"] if s["name"] == "mix.plan")["metrics"]
    for phase, budget in (("main", 420_000), ("anneal", 80_000)):
        pairs = (out / f"mix_phase={phase}" / "_BLEND.txt").read_text().split()
        weights = {Path(path).name.removeprefix("source="): float(w) for w, path in zip(pairs[::2], pairs[1::2])}
        assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
        for source, weight in weights.items():
            folder = out / f"mix_phase={phase}" / f"source={source}"
            tokens = pc.sum(pa.concat_tables([pq.read_table(p) for p in folder.glob("part-*.parquet")])[
                "mix_tokens"]).as_py()
            assert weight == pytest.approx(tokens / sum(
                pc.sum(pq.read_table(p)["mix_tokens"]).as_py()
                for p in (out / f"mix_phase={phase}").glob("source=*/part-*.parquet")), rel=1e-5)
            assert weight == pytest.approx(plan[f"group.{phase}:{source}.target_tokens"] / budget, abs=0.03)
    manifest = json.loads(Path(state["output"]["manifest"]).read_text())
    assert manifest["blends"] == ["mix_phase=anneal/_BLEND.txt", "mix_phase=main/_BLEND.txt"]
    assert manifest["splits"]["mix_phase=main/source=sqlite3-doc"]["weight"] > 0
