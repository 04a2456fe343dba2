"""embed over five waves, the driver killed (SIGKILL) while the third is encoding: the rerun
keeps the two committed waves' embeddings (their files untouched), encodes the rest, and
its output equals an uninterrupted run's. `tamis run` as a subprocess, the real bundled
model, encode actors that live across the waves of one Ray Data job (jobs/wave_stream.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import demo_config, write_config
from tests.integration.test_embedding_resume import short_documents
from tests.integration.test_resume import finish, kill_driver_when, output_table, run_json, tamis
from tests.support.serial_ray import run_serially

pytestmark = pytest.mark.integration

WAVES = 5


def wave_inputs(folder: Path) -> Path:
    """Five files of 40 short sample documents each; with a tiny ``wave_mb`` each is a wave."""
    whole = short_documents(folder / "all.jsonl.gz", count=4 * 50)
    docs = [json.loads(line) for line in gzip.open(whole, "rt", encoding="utf-8")]
    whole.unlink()
    assert len(docs) >= WAVES * 40
    for n in range(WAVES):
        with gzip.open(folder / f"part-{n}.jsonl.gz", "wt", encoding="utf-8") as f:
            for doc in docs[n * 40:(n + 1) * 40]:
                f.write(json.dumps(doc) + "\n")
    return folder


def embed_config(store: Path, inputs: Path) -> dict[str, Any]:
    raw = demo_config(store=str(store))
    raw["input"]["paths"] = [str(inputs / "part-*.jsonl.gz")]
    raw["stages"] = [{"op": "embed", "config": {"dtype": "float32"}}]
    raw["execution"] = {"batch_rows": 20, "wave_mb": 0.001}  # one file per wave
    return raw


def encode_commits(store: Path) -> dict[str, int]:
    """Each committed wave of embed.encode: its commit file and that file's mtime (ns)."""
    return {str(p.relative_to(store)): p.stat().st_mtime_ns
            for p in store.glob("stages/embed.encode-*/wave-*/_COMMIT.json")}


def test_driver_killed_in_the_third_wave_re_encodes_only_the_uncommitted_waves(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    inputs = wave_inputs(tmp_path / "in")
    store = tmp_path / "store"
    config = write_config(tmp_path / "embed.yaml", embed_config(store, inputs))

    def third_wave_encoding(state: dict[str, Any]) -> bool:
        encode = next(s for s in state["stages"] if s["name"] == "embed.encode")
        return encode["status"] == "running" and encode["waves_done"] >= 2

    killed = kill_driver_when(tamis("run", str(config), "--run-id", "w"), store, "w", third_wave_encoding, 600,
                              "two committed waves of embed.encode")
    encode = next(s for s in killed["stages"] if s["name"] == "embed.encode")
    assert encode["waves_total"] == WAVES and 2 <= encode["waves_done"] < WAVES, encode
    before = encode_commits(store)
    assert 2 <= len(before) < WAVES, before

    rerun = finish(tamis("run", str(config), "--run-id", "w"), timeout=600)
    after = encode_commits(store)
    assert len(after) == WAVES
    assert all(after[key] == mtime for key, mtime in before.items())  # committed waves not re-encoded
    assert f"embed.encode: wave 1/{WAVES} committed earlier, skipped" in rerun
    assert f"embed.encode: wave {WAVES}/{WAVES} committed (" in rerun

    reference_store = tmp_path / "reference"
    run_serially(write_config(tmp_path / "ref.yaml", embed_config(reference_store, inputs)), "w")
    resumed, uninterrupted = output_table(store, "w"), output_table(reference_store, "w")
    assert resumed.num_rows == WAVES * 40
    assert resumed.sort_by("id").equals(uninterrupted.sort_by("id"))
