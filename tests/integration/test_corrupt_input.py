"""A corrupt input file and a deeply nested line in a demo-shaped run: neither costs the run
(input.on_corrupt_file: skip), and with fail the error names the file."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path
from typing import Any

import pytest

from jobs.cli import _follow, main, root_cause
from jobs.report import render_summary
from jobs.scheduler import start_actor
from jobs.pipeline_load import load_pipeline
from operators.io.records import derived_id
from tests.conftest import demo_config, write_config
from tests.integration.conftest import read_output, read_rejected, run_config

pytestmark = pytest.mark.integration

WORDS = ("river stone garden window market letter winter morning station harbor paper "
         "candle valley forest bridge orange silver table pocket meadow").split()


def _line(name: str, i: int, rnd: random.Random) -> bytes:
    text = f"Document {name} number {i}. " + " ".join(rnd.choice(WORDS) for _ in range(60)) + "."
    return json.dumps({"id": f"{name}-{i}", "text": text, "source": "web"}).encode() + b"\n"


def _inputs(folder: Path) -> tuple[list[str], Path]:
    """A good file, a gzip cut in the middle, a file with one line nested 5,000 deep; returns
    the ids of the complete lines (those a reader can get) and the cut file."""
    rnd = random.Random(7)
    folder.mkdir()
    good = [_line("good", i, rnd) for i in range(40)]
    (folder / "a-good.jsonl").write_bytes(b"".join(good))
    cut_lines = [_line("cut", i, rnd) for i in range(600)]
    whole = gzip.compress(b"".join(cut_lines))
    cut = folder / "b-cut.jsonl.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    before_break = zlib.decompressobj(31).decompress(cut.read_bytes()).count(b"\n")
    deep = [_line("deep", i, rnd) for i in range(10)]
    deep.insert(3, b'{"id": "deep-x", "text": ' + b"[" * 5000 + b"]" * 5000 + b"}\n")
    (folder / "c-deep.jsonl").write_bytes(b"".join(deep))
    ids = [f"good-{i}" for i in range(40)] + [f"cut-{i}" for i in range(before_break)] + [f"deep-{i}" for i in range(10)]
    assert 100 < before_break < 600
    return ids, cut


def _config(tmp_path: Path, folder: Path, on_corrupt: str) -> dict[str, Any]:
    raw = demo_config(store=str(tmp_path / "store"))
    raw["input"]["paths"] = [str(folder)]
    raw["input"]["on_corrupt_file"] = on_corrupt
    raw["execution"] = {"wave_mb": 1, "batch_rows": 64, "part_rows": 100}
    return raw


def test_a_cut_gzip_and_a_deep_line_are_rejected_rows_and_the_run_goes_on(
        ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids, cut = _inputs(tmp_path / "in")
    pipeline, state = run_config(tmp_path, _config(tmp_path, tmp_path / "in", "skip"), run_id="skip")
    assert sorted(read_output(pipeline, state)["id"].to_pylist()) == sorted(ids)
    read = next(s for s in state["stages"] if s["name"] == "read")
    assert read["dropped"] == {"read:corrupt_file": 1, "read:malformed_json": 1}
    assert read["rows_out"] == len(ids) and read["rows_in"] == len(ids) + 2
    corrupt = [r for r in read_rejected(pipeline).to_pylist() if r["drop_reason"] == "read:corrupt_file"]
    assert corrupt == [{"id": derived_id(str(cut), len(ids) - 50), "drop_reason": "read:corrupt_file"}]
    # counted wherever drop reasons are: the stage commit, the manifest's funnel, the end-of-run
    # summary (per reason) and tamis status (a stage's total)
    store = Path(pipeline.spec.store)
    commits = [json.loads(p.read_text()) for p in store.glob("stages/read-*/_COMMIT.json")]
    assert [c["dropped"] for c in commits] == [read["dropped"]]
    manifest = json.loads(Path(state["output"]["manifest"]).read_text())
    assert next(s for s in manifest["funnel"] if s["stage"] == "read")["dropped"] == read["dropped"]
    summary = [line.split() for line in render_summary(state).splitlines()]
    assert ["read:corrupt_file", "1"] in [row[-2:] for row in summary]
    capsys.readouterr()
    assert main(["status", "skip", "--store", str(store)]) == 0
    status = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert next(row for row in status if row[:1] == ["read"])[6] == "2"  # read read done 1/1 in out dropped


def test_with_fail_the_run_stops_with_an_error_naming_the_cut_file(ray_local: None, tmp_path: Path) -> None:
    _, cut = _inputs(tmp_path / "in")
    raw = _config(tmp_path, tmp_path / "in", "fail")
    with pytest.raises(Exception) as caught:
        run_config(tmp_path, raw, run_id="fail-driver")
    assert str(cut) in root_cause(caught.value) and "CorruptInputError" in root_cause(caught.value)
    # as `tamis run` meets it: the scheduler actor's error, in the one line the CLI prints
    spec = load_pipeline(str(write_config(tmp_path / "fail.yaml", raw))).spec
    actor = start_actor(spec, "fail-actor")
    try:
        with pytest.raises(Exception) as caught:
            _follow(actor, actor.run.remote())
    finally:
        import ray

        ray.kill(actor)
    line = root_cause(caught.value)
    assert line.startswith("CorruptInputError: corrupt input file ") and str(cut) in line
    assert "reading stopped at line " in line and "EOFError" in line
