"""Five nights of incremental curation over a growing input, with planted cross-night exact
and near duplicates, one changed file, a night whose driver is killed and rerun, and gc.

Nights 1, 2, 4 and 5 run in this process (tests/support/serial_ray.py: the real operators,
store and execution code without a Ray start); night 3 runs as `tamis run --nightly`
would, as a subprocess on a real local Ray, is SIGKILLed mid-run and run again. A second
store runs all five nights uninterrupted: every night's output, the indexes and the input
record must come out the same.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs import gc
from jobs.nightly import latest_key
from jobs.store import Store
from tests.conftest import REPO, write_config
from tests.integration.test_resume import finish, kill_driver_when, run_json, tamis
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration

VOCABULARY = [f"w{n}" for n in range(3000)]


def page(seed: int, words: int = 120) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def near(text: str) -> str:
    """A near copy: two words of 120 changed (Jaccard of 5-word shingles about 0.85)."""
    words = text.split()
    words[40], words[90] = "changed", "edited"
    return " ".join(words)


def write_jsonl(path: Path, docs: list[dict[str, str]], mtime: int) -> None:
    path.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs).encode(), mtime=0))
    os.utime(path, ns=(mtime, mtime))


def docs(night: int, n: int) -> list[dict[str, str]]:
    return [{"id": f"n{night}-{k:03d}", "text": page(night * 1000 + k), "source": "web"} for k in range(n)]


def grow(inputs: Path, night: int) -> dict[str, str]:
    """Add night ``night``'s files to ``inputs`` (and change one on night 4); what is planted,
    by id: the reason it must be removed for."""
    inputs.mkdir(exist_ok=True)
    t = 1_700_000_000_000_000_000 + night * 86_400 * 10**9
    planted: dict[str, str] = {}
    if night == 1:
        write_jsonl(inputs / "a.jsonl.gz", docs(1, 30), t)
        write_jsonl(inputs / "b.jsonl.gz", docs(11, 30), t)
    elif night == 2:
        new = docs(2, 30)
        # an exact copy (up to case and spacing) of a page kept on night 1
        new.append({"id": "n2-exact", "text": "  " + page(1000 + 3).upper(), "source": "web"})
        planted["n2-exact"] = "dedup:exact_history"
        write_jsonl(inputs / "c.jsonl.gz", new, t)
    elif night == 3:
        new = docs(3, 30)
        new.append({"id": "n3-near", "text": near(page(1000 + 5)), "source": "web"})  # of night 1's
        new.append({"id": "n3-near2", "text": near(page(2000 + 7)), "source": "web"})  # of night 2's
        planted.update({"n3-near": "dedup:minhash", "n3-near2": "dedup:minhash"})
        write_jsonl(inputs / "d.jsonl.gz", new, t)
        write_jsonl(inputs / "e.jsonl.gz", docs(33, 30), t)
    elif night == 4:
        # c.jsonl.gz is rewritten with one more page: read again whole, its old pages removed
        write_jsonl(inputs / "c.jsonl.gz", docs(2, 30) + [{"id": "n4-appended", "text": page(4999),
                                                           "source": "web"}], t)
        planted.update({d["id"]: "dedup:exact_history" for d in docs(2, 30)})
        write_jsonl(inputs / "f.jsonl.gz", docs(4, 30), t)
    elif night == 5:
        new = docs(5, 30)
        new.append({"id": "n5-exact", "text": page(4999), "source": "web"})  # night 4's appended page
        planted["n5-exact"] = "dedup:exact_history"
        write_jsonl(inputs / "g.jsonl.gz", new, t)
    return planted


def nightly_config(tmp_path: Path, store: Path, inputs: Path) -> Path:
    index = {"name": "web", "compact_segments": 3}
    raw = {
        "name": "crawl", "store": str(store),
        "input": {"paths": [str(inputs / "*.jsonl.gz")], "incremental": {"state": "crawl", "compact_segments": 3}},
        "stages": [
            {"op": "exact_dedup", "config": {"scope": "global", "index": index}},
            {"op": "minhash_dedup", "config": {"threshold": 0.7, "index": index}},
            {"op": "filter", "config": {"rules": [
                {"keep": "is_null(dedup_exact_history_id)", "reason": "dedup:exact_history"},
                {"keep": "dedup_exact_keep", "reason": "dedup:exact"},
                {"keep": "dedup_minhash_keep", "reason": "dedup:minhash"}]}},
        ],
        "execution": {"wave_mb": 0.002, "part_rows": 20, "batch_rows": 20},
    }
    return write_config(tmp_path / f"{store.name}.yaml", raw)


def output_ids(store: Path, run_id: str) -> list[str]:
    out = store / "runs" / run_id / "output"
    return sorted(i for p in out.glob("part-*.parquet") for i in pq.read_table(p, columns=["id"])["id"].to_pylist())


def rejected(store: Path, run_id: str) -> dict[str, str]:
    """id -> drop reason of every document the run removed (from its stages' rejected/ files)."""
    state = run_json(store, run_id)
    assert state is not None
    found: dict[str, str] = {}
    for s in state["stages"]:
        for p in (store / "stages" / f"{s['name']}-{s['fingerprint']}").glob("**/rejected/*.parquet"):
            t = pq.read_table(p)
            if "id" in t.column_names and "drop_reason" in t.column_names:
                found.update(zip(t["id"].to_pylist(), t["drop_reason"].to_pylist()))
    return found


def state_rows(store: Path, family: str, name: str) -> list[str]:
    """The ids (or URIs) the newest version of a cross-run state holds, sorted."""
    prefix = store / family / name
    newest = max(prefix.glob("v-*.json"))
    files = json.loads(newest.read_text())["files"]
    column = "uri" if family == "inputs" else "id"
    return sorted(v for f in files for v in pq.read_table(store / f, columns=[column])[column].to_pylist())


def test_five_nights_remove_cross_night_copies_read_only_new_files_and_survive_a_kill(tmp_path: Path) -> None:
    store, reference = tmp_path / "store", tmp_path / "reference"
    inputs = tmp_path / "inputs"
    config, reference_config = nightly_config(tmp_path, store, inputs), nightly_config(tmp_path, reference, inputs)
    planted: dict[str, str] = {}
    for night in range(1, 6):
        planted.update(grow(inputs, night))
        run_id = f"crawl-2026-12-0{night}"
        if night == 3:  # killed once the exact stage committed, then run again the same way
            proc = tamis("run", str(config), "--run-id", run_id, "--num-cpus", "2")
            kill_driver_when(proc, store, run_id, lambda s: any(
                x["name"] == "exact_dedup.keep" and x["status"] == "committed" for x in s["stages"]),
                240, "exact_dedup.keep committing")
            assert run_json(store, run_id)["status"] == "running"  # the driver died with it
            finish(tamis("run", str(config), "--run-id", run_id, "--num-cpus", "2"))
        else:
            run_serially(config, run_id)
        run_serially(reference_config, run_id)
        state = run_json(store, run_id)
        assert state is not None and state["status"] == "succeeded", state and state.get("error")

        # only the new and changed files were read
        expected = {1: (2, 0, 0), 2: (1, 0, 2), 3: (2, 0, 3), 4: (1, 1, 4), 5: (1, 0, 6)}[night]
        seen = state["input_files"]
        assert (seen["new"], seen["changed"], seen["unchanged"]) == expected, seen
        read = next(s for s in state["stages"] if s["name"] == "read")
        assert read["rows_in"] == {1: 60, 2: 31, 3: 62, 4: 61, 5: 31}[night]

        # the same night, uninterrupted, in the other store: the same output
        assert output_ids(store, run_id) == output_ids(reference, run_id)
        removed = rejected(store, run_id)
        for doc_id, reason in planted.items():
            if doc_id in removed or doc_id.startswith(f"n{night}-") or doc_id == "n2-exact" and night == 2:
                assert removed.get(doc_id) == reason, (night, doc_id, removed.get(doc_id))
        assert not set(planted) & set(output_ids(store, run_id))
        latest = json.loads((store / latest_key("crawl")).read_text())
        assert latest["run_id"] == run_id and latest["rows"] == len(output_ids(store, run_id))

    assert "n4-appended" in output_ids(store, "crawl-2026-12-04")
    for family in ("indexes", "exact_indexes", "inputs"):
        name = "crawl" if family == "inputs" else "web"
        assert state_rows(store, family, name) == state_rows(reference, family, name)
    # night 4 made the third segment past compact_segments 3: the states are one table each
    assert all(len(json.loads(max((store / f / n).glob("v-*.json")).read_text())["files"]) == 2
               for f, n in (("indexes", "web"), ("exact_indexes", "web"), ("inputs", "crawl")))

    # a sixth night with nothing new succeeds with no output and leaves latest where it was
    state = run_serially(config, "crawl-2026-12-06")
    assert state["status"] == "succeeded" and state["nothing_new"] and state["output"] is None
    assert json.loads((store / latest_key("crawl")).read_text())["run_id"] == "crawl-2026-12-05"

    # gc frees the segments compaction folded away; every run stays readable and rerunnable
    freed = gc.collect(Store(str(store)))
    assert any("/segments/" in d for d in freed.dirs), freed.dirs
    for night in range(1, 6):
        run_id = f"crawl-2026-12-0{night}"
        before = output_ids(store, run_id)
        assert before and before == output_ids(reference, run_id)
        status = subprocess.run([sys.executable, "-m", "jobs.cli", "status", run_id, "--store", str(store)],
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "succeeded" in status.stdout, status.stdout + status.stderr
    again = run_serially(config, "crawl-2026-12-02")  # a rerun of an old night after gc: nothing recomputed
    assert again["status"] == "succeeded" and output_ids(store, "crawl-2026-12-02") == output_ids(reference, "crawl-2026-12-02")
    assert all(s["status"] in ("cached", "committed") for s in again["stages"]), [s["status"] for s in again["stages"]]
