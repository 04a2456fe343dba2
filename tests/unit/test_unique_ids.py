"""Repeated ids are found across files and all but the first occurrence quarantined
(operators/io/unique_ids.py), so dedup, which joins by id, stays right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import execute
from jobs.scheduler import RunScheduler
from jobs.pipeline_load import load_pipeline
from operators.base import DROP_REASON, FILE_COLUMN
from operators.io.unique_ids import DUPLICATE_ID, DuplicateIds, QuarantineDuplicateIds, UniqueIdsConfig
from tests.support.serial_ray import SerialRay

CONFIG = UniqueIdsConfig()


def _find(rows: list[tuple[str, str]]) -> pa.Table:
    op = DuplicateIds(CONFIG)
    table = pa.table({"id": [r[0] for r in rows], FILE_COLUMN: [r[1] for r in rows]})
    return op(op.project(table).sort_by([("id", "ascending")]))


def test_find_lists_each_file_of_a_repeated_id_with_its_first_file() -> None:
    found = _find([("a", "part-00001-0000"), ("b", "part-00000-0000"), ("a", "part-00000-0000"),
                   ("c", "part-00001-0000"), ("c", "part-00001-0000"), ("a", "part-00001-0000")])
    assert found.to_pylist() == [
        {"id": "a", FILE_COLUMN: "part-00000-0000", "_first_file": "part-00000-0000"},
        {"id": "a", FILE_COLUMN: "part-00001-0000", "_first_file": "part-00000-0000"},
        {"id": "c", FILE_COLUMN: "part-00001-0000", "_first_file": "part-00001-0000"},
    ]
    assert _find([("a", "f"), ("b", "f")]).num_rows == 0


def test_apply_keeps_the_first_occurrence_in_the_first_file_across_batches() -> None:
    found = _find([("a", "f0"), ("a", "f1"), ("c", "f1"), ("c", "f1")])
    first = QuarantineDuplicateIds(CONFIG, found.filter(pa.compute.equal(found[FILE_COLUMN], "f0")))
    assert first(pa.table({"id": ["a", "b"]}))[DROP_REASON].to_pylist() == [None, None]
    second = QuarantineDuplicateIds(CONFIG, found.filter(pa.compute.equal(found[FILE_COLUMN], "f1")))
    # f1's "a" repeats f0's; of f1's two "c", the first is kept, even in the next batch
    assert second(pa.table({"id": ["a", "x", "c"]}))[DROP_REASON].to_pylist() == [DUPLICATE_ID, None, None]
    assert second(pa.table({"id": ["c", "y"]}))[DROP_REASON].to_pylist() == [DUPLICATE_ID, None]
    untouched = QuarantineDuplicateIds(CONFIG, None)(pa.table({"id": ["a", "c"]}))
    assert untouched[DROP_REASON].null_count == 2


WORDS = ("the quick brown fox jumps over the lazy dog while seven wizards quietly judge boxing matches near "
         "a frozen lake under pale winter light and every spectator counts the rounds in silence").split()


def _text(seed: int, edit: str = "") -> str:
    words = [f"{w}{seed}" if i % 3 == 0 else w for i, w in enumerate(WORDS * 6)]
    return " ".join(words) + (f" {edit}" if edit else "")


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: list[list[dict[str, Any]]],
         duplicate_ids: str = "quarantine") -> tuple[list[str], dict[str, Any]]:
    monkeypatch.setattr(execute, "ray", SerialRay())
    data = tmp_path / "in"
    data.mkdir(parents=True)
    for n, records in enumerate(files):
        (data / f"f{n}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {"name": "ids", "store": str(tmp_path / "store"),
              "input": {"paths": [str(data / "*.jsonl")], "duplicate_ids": duplicate_ids},
              "stages": [{"op": "minhash_dedup", "config": {"threshold": 0.7}},
                         {"op": "filter", "config": {"rules": [{"keep": "dedup_minhash_keep", "reason": "dedup:minhash"}]}}]}
    path = tmp_path / "ids.yaml"
    path.write_text(json.dumps(config))
    state = RunScheduler(load_pipeline(str(path)).spec, "ids").run()
    out = Path(state["output"]["uri"])
    texts = [t for p in sorted(out.glob("part-*.parquet")) for t in pq.read_table(p)["text"].to_pylist()]
    return texts, state


def test_repeated_ids_no_longer_corrupt_near_duplicate_removal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ids x, x, y, x: the two first texts are near-copies, and so are y and the last x
    a, a2, b, b2 = _text(1), _text(1, "edited"), _text(2), _text(2, "edited")
    texts, state = _run(tmp_path, monkeypatch, [[{"id": "x", "text": a}, {"id": "x", "text": a2}],
                                                [{"id": "y", "text": b}, {"id": "x", "text": b2}]])
    # the 2nd and 3rd x are quarantined; of what is left (x: a, y: b) nothing is a near-copy
    assert sorted(texts) == sorted([a, b])
    dropped = {s["name"]: s["dropped"] for s in state["stages"]}
    assert dropped["unique_ids.apply"] == {DUPLICATE_ID: 2}
    assert dropped["filter"] == {}


def test_unique_ids_change_nothing_and_allow_skips_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, a2, b = _text(1), _text(1, "edited"), _text(2)
    records = [[{"id": "1", "text": a}, {"id": "2", "text": a2}], [{"id": "3", "text": b}]]
    texts, state = _run(tmp_path / "checked", monkeypatch, records)
    assert sorted(texts) == sorted([a, b])
    allowed, state_allowed = _run(tmp_path / "allowed", monkeypatch, records, duplicate_ids="allow")
    assert allowed == texts
    assert "unique_ids.find" not in {s["name"] for s in state_allowed["stages"]}
