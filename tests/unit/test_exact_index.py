"""The exact history index: matching a run's hashes with earlier runs' kept documents, the
match written onto documents, and versions folded from outputs (compacted past a count)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.state import StateVersions
from jobs.store import Store
from operators.base import FILE_COLUMN
from operators.dedup.exact import ExactDedup, ExactHash
from operators.dedup.exact_config import HASH, HISTORY_ID, KEEP, ExactDedupConfig
from operators.dedup.exact_index import AssignHistory, ExactIndexMatch

CONFIG = ExactDedupConfig(index={"name": "web", "compact_segments": 3})


def hashed(texts: list[str], ids: list[str]) -> pa.Table:
    return ExactHash(CONFIG)(pa.table({"id": ids, "text": texts, "source": ["web"] * len(ids)}))


def match(earlier: pa.Table, new: pa.Table) -> pa.Table:
    """What jobs/ does: project both sides, sort by (hash, id), one call."""
    op = ExactIndexMatch(CONFIG)
    [index] = list(ExactIndexMatch.fold_state(CONFIG, None, iter([earlier])))[1:]
    rows = pa.concat_tables([op.project(new.append_column(FILE_COLUMN, pa.array(["part-1"] * new.num_rows))),
                             op.state_project(index)])
    return op(rows.sort_by([(HASH, "ascending"), ("id", "ascending")]))


def test_a_document_identical_to_an_earlier_kept_one_matches_its_smallest_id() -> None:
    earlier = hashed(["Hello   World", "hello world", "other page"], ["e2", "e1", "e3"])
    new = hashed(["HELLO world", "fresh text", "Other  page "], ["n1", "n2", "n3"])
    got = match(earlier, new).sort_by("id").to_pylist()
    assert got == [{"id": "n1", FILE_COLUMN: "part-1", HISTORY_ID: "e1"},
                   {"id": "n3", FILE_COLUMN: "part-1", HISTORY_ID: "e3"}]


def test_documents_an_earlier_run_removed_are_not_in_the_index() -> None:
    earlier = hashed(["same text", "same text"], ["a", "b"]).append_column(KEEP, pa.array([True, False]))
    [rows] = list(ExactIndexMatch.fold_state(CONFIG, None, iter([earlier])))[1:]
    assert rows.column("id").to_pylist() == ["a"]


def test_assign_writes_the_match_or_null() -> None:
    new = hashed(["a", "b", "c"], ["n1", "n2", "n3"])
    artifact = pa.table({"id": ["n3"], FILE_COLUMN: ["part-1"], HISTORY_ID: ["e9"]})
    assert AssignHistory(CONFIG, artifact=artifact)(new)[HISTORY_ID].to_pylist() == [None, None, "e9"]
    assert AssignHistory(CONFIG)(new)[HISTORY_ID].null_count == 3


def test_parts_without_an_index_are_unchanged_and_with_one_add_match_and_assign() -> None:
    assert [p.suffix for p in ExactDedup.parts(ExactDedupConfig())] == ["hash", "keep"]
    assert [p.suffix for p in ExactDedup.parts(CONFIG)] == ["hash", "index_match", "index_assign", "keep"]


def test_versions_append_a_segment_per_run_then_compact_into_one_file(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    state = ExactIndexMatch.cross_run_state(CONFIG)
    assert state is not None and state.compact_segments == 3
    versions = StateVersions(store, state)
    for night in range(1, 6):
        docs = hashed([f"night {night} doc {i}" for i in range(4)], [f"n{night}-{i}" for i in range(4)])
        key = f"runs/night-{night}/out.parquet"
        with store.open_output(key) as sink:
            pq.write_table(docs.append_column(KEEP, pa.array([True] * 4)), sink)
        pin = versions.pin(f"night-{night}")
        assert pin.version == night - 1
        body = versions.advance(f"night-{night}", pin, f"fp{night}", [key], 100, ExactIndexMatch, CONFIG)
        # nights 1-3: one segment each; night 4 would make 4 > 3: one table; night 5 appends to it
        assert len(body["files"]) == [1, 2, 3, 1, 2][night - 1], body["files"]
        assert body["documents"] == 4 * night
        rows = pa.concat_tables([pq.read_table(store.fs_path(f)) for f in body["files"]])
        assert sorted(rows["id"].to_pylist()) == sorted(f"n{n}-{i}" for n in range(1, night + 1) for i in range(4))
        assert pc.all(pc.is_valid(rows[HASH])).as_py()
    assert any("/tables/" in f for f in versions.current()["files"])
