"""`tamis explain` on real runs of configs/demo.yaml and configs/dedup.yaml (built without Ray):
a document removed by exact dedup, one removed by the filter, one kept, one removed as a near
duplicate, one the read stage rejected."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jobs import cli
from jobs.store import Store
from operators.dedup import minhash_math as mm
from operators.dedup.minhash_config import MinhashDedupConfig, verification_sets
from tests.support.inspect_stores import run_without_ray, stage_table, write_config


class Run:
    """One run of a shipped config in a store of its own."""

    def __init__(self, root: Path, config: str) -> None:
        self.store_uri = str(root / "store")
        self.store = Store(self.store_uri)
        self.state = run_without_ray(write_config(root, config, self.store_uri), "r")

    def rejected(self, reason: str) -> pa.Table:
        rows = stage_table(self.store, self.state, "filter", rejected=True)
        return rows.filter(pc.equal(rows["drop_reason"], reason))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return Run(tmp_path_factory.mktemp("demo"), "demo.yaml")


@pytest.fixture(scope="module")
def dedup(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return Run(tmp_path_factory.mktemp("dedup"), "dedup.yaml")


def explain(capsys: pytest.CaptureFixture[str], run: Run, doc: str) -> str:
    code = cli.main(["explain", "r", doc, "--store", run.store_uri])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    return out


def steps(out: str) -> dict[str, str]:
    """Stage name -> what explain says it did (the unindented lines after the header)."""
    body = out.split("\n\n")[1]
    return dict(line.split(None, 1) for line in body.splitlines() if not line.startswith(" "))


def value(out: str, column: str) -> str:
    return re.search(rf"^  {column} = (.*)$", out, re.MULTILINE).group(1)


def test_a_document_removed_as_an_exact_copy_names_the_kept_one_with_its_hash(capsys, demo: Run) -> None:
    copy = demo.rejected("dedup:exact").to_pylist()[0]
    keep = stage_table(demo.store, demo.state, "exact_dedup.keep")
    same = keep.filter(pc.and_(pc.equal(keep["dedup_exact_hash"], copy["dedup_exact_hash"]), keep["dedup_exact_keep"]))
    [keeper] = same["id"].to_pylist()
    out = explain(capsys, demo, copy["id"])
    assert out.startswith(f"document {copy['id']} in run r (demo): removed at filter (dedup:exact)\n")
    assert steps(out) == {"read": "kept", "exact_dedup.hash": "kept", "exact_dedup.keep": "kept", "heuristics": "kept",
                          "filter": "removed: dedup:exact (fails the keep rule 'dedup_exact_keep')"}
    assert value(out, "dedup_exact_keep") == "false" and value(out, "dedup_exact_hash") == copy["dedup_exact_hash"]
    assert value(out, "dedup_exact_count") == str(copy["dedup_exact_count"])
    assert f"exact duplicate of {keeper} (same dedup_exact_hash {copy['dedup_exact_hash']}): " in out


def test_a_document_the_filter_removed_shows_the_rule_and_the_value_it_failed(capsys, demo: Run) -> None:
    short = demo.rejected("quality:word_count").to_pylist()[0]
    out = explain(capsys, demo, short["id"])
    assert "removed at filter (quality:word_count)" in out.splitlines()[0]
    assert steps(out)["filter"] == "removed: quality:word_count (fails the keep rule 'quality_word_count >= 50')"
    assert int(value(out, "quality_word_count")) == short["quality_word_count"] < 50
    assert "duplicate of" not in out


def test_a_kept_document_passes_every_stage(capsys, demo: Run) -> None:
    kept = stage_table(demo.store, demo.state, "filter").slice(0, 1).to_pylist()[0]
    out = explain(capsys, demo, kept["id"])
    assert out.splitlines()[0] == f"document {kept['id']} in run r (demo): kept through filter"
    assert list(steps(out).items()) == [("read", "kept"), ("exact_dedup.hash", "kept"), ("exact_dedup.keep", "kept"),
                                        ("heuristics", "kept"), ("filter", "passed")]
    assert value(out, "source") == kept["source"] and value(out, "dedup_exact_keep") == "true"
    assert value(out, "quality_word_count") == str(kept["quality_word_count"])


def test_a_row_the_read_stage_rejected_shows_where_it_came_from(capsys, demo: Run) -> None:
    out = explain(capsys, demo, "planted-missing-text")
    assert out.splitlines()[:2] == [
        "document planted-missing-text in run r (demo): removed at read (read:missing_text)", "text: (no text)"]
    assert value(out, "input_uri").endswith("git-doc.jsonl.gz") and value(out, "input_line").isdigit()


def test_a_near_duplicate_names_its_keeper_and_their_jaccard(capsys, dedup: Run) -> None:
    near = dedup.rejected("dedup:minhash")
    near = near.filter(near["dedup_exact_keep"]).to_pylist()[0]  # not an exact copy too
    out = explain(capsys, dedup, near["id"])
    keeper = near["dedup_minhash_cluster_id"]
    assert "removed at filter (dedup:minhash)" in out.splitlines()[0]
    assert value(out, "dedup_minhash_keep") == "false" and value(out, "dedup_minhash_cluster_id") == keeper
    match = re.search(rf"^near duplicate of {re.escape(keeper)} \(dedup_minhash_cluster_id\): Jaccard ([0-9.]+) of "
                      r"their word 5-gram shingles \(threshold 0.7\): ", out, re.MULTILINE)
    assert match, out
    reads = stage_table(dedup.store, dedup.state, "read")
    keeper_text = reads.filter(pc.equal(reads["id"], keeper))["text"][0].as_py()
    sets = verification_sets(pa.array([near["text"], keeper_text]), MinhashDedupConfig(threshold=0.7, ngram=5))
    assert float(match.group(1)) == pytest.approx(mm.jaccard(sets.doc(0), sets.doc(1)), abs=5e-4)
    assert 0.7 <= float(match.group(1)) < 1
    assert "exact duplicate" not in out


def test_every_stage_of_the_dedup_run_is_listed_in_order(capsys, dedup: Run) -> None:
    kept: dict[str, Any] = stage_table(dedup.store, dedup.state, "filter").slice(0, 1).to_pylist()[0]
    out = explain(capsys, dedup, kept["id"])
    assert list(steps(out)) == [s["name"] for s in dedup.state["stages"]]
    assert steps(out)["minhash_dedup.buckets"] == "passed" and steps(out)["minhash_dedup.apply"] == "kept"
