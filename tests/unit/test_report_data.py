"""The run report's data (jobs/report_*.py): hand-made files and stores for each function, and
the demo and dedup pipelines run without Ray (tests/support/inspect_stores.py) for the whole."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import html_report, report_clusters, report_data, report_signals
from jobs.checkpoint import FileRef, WaveResult, commit_key, run_json_key, stage_prefix
from jobs.part_reader import BASE_KEY, COLUMNS_KEY
from jobs.report_reading import LogicalSizes, previews, raw_preview, sample_columns
from jobs.report_signals import Cut, FilterRule, rule_cuts
from jobs.stage_rows import InspectError
from jobs.store import Store
from tests.support.inspect_stores import FailingExecutor, run_without_ray, write_config


def _write(store: Store, key: str, table: pa.Table) -> FileRef:
    path = Path(store.fs_path(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return FileRef(key, table.num_rows, path.stat().st_size)


def _rule(keep: str) -> FilterRule:
    return FilterRule(keep, "quality:x", ())


# -- the filter's cuts --------------------------------------------------------------------------
@pytest.mark.parametrize("keep, cuts", [
    ("quality_word_count >= 50", [("quality_word_count", ">=", 50.0)]),
    ("50 <= quality_word_count", [("quality_word_count", ">=", 50.0)]),
    ("3 <= w <= 10", [("w", ">=", 3.0), ("w", "<=", 10.0)]),
    ("w >= 3 and (w <= 10 or x < -0.5)", [("w", ">=", 3.0), ("w", "<=", 10.0), ("x", "<", -0.5)]),
    ("s != 1.5", [("s", "!=", 1.5)]),
    ("dedup_exact_keep", []),
    ("lang_language == 'en'", []),
    ("a > b", []),
    ("flag == True", []),
])
def test_rule_cuts_find_every_comparison_of_a_column_with_a_number(keep: str, cuts: list[tuple[str, str, float]]) -> None:
    found = rule_cuts(_rule(keep))
    assert sorted((c.column, c.op, c.value) for c in found) == sorted(cuts)
    assert all(isinstance(c, Cut) and c.reason == "quality:x" for c in found)


# -- reading within a budget ----------------------------------------------------------------------
def test_sample_columns_spreads_its_budget_and_says_what_it_stands_for(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    files = [_write(store, f"s/part-{n}.parquet", pa.table({"v": list(range(n * 5000, n * 5000 + 5000)),
                                                            "w": ["x"] * 5000})) for n in range(4)]
    whole = sample_columns(store, files, ["v"], 10**6)
    assert not whole.sampled and whole.rows_read == 20_000 and whole.scale == 1.0
    assert whole.table().column_names == ["v"]  # only the columns asked for
    assert sorted(whole.table()["v"].to_pylist()) == list(range(20_000))
    part = sample_columns(store, files, ["v"], 4000)
    assert part.sampled and part.rows_read == 4096 and part.scale == pytest.approx(20_000 / 4096)
    assert len(part.tables) == 4  # a share (1,024 rows) of every file, not the first file only
    first = sample_columns(store, files, ["v"], 4000, whole_files=True)
    assert first.rows_read == 5000 and len(first.tables) == 1  # one file, read to its end
    assert sample_columns(store, [], ["v"], 10).table() is None


def test_previews_cut_long_texts_and_keep_nulls() -> None:
    cut = previews(pa.array(["short", "x" * 400, None, "é" * 301]), 300).to_pylist()
    assert cut == ["short", "x" * 300 + "…", None, "é" * 300 + "…"]
    assert raw_preview(b'{"text": "caf\xe9"}\n') == '{"text": "caf\ufffd"}'
    assert raw_preview(None) == "" and raw_preview(b"y" * 2000, 10) == "y" * 10 + "…"


def test_logical_sizes_count_a_linked_file_s_share_of_its_base(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    base = _write(store, "a/part-0.parquet", pa.table({"id": [str(i) for i in range(100)], "text": ["t" * 50] * 100}))
    meta = {BASE_KEY: base.key.encode(), COLUMNS_KEY: json.dumps(["id", "text", "_tamis_row"]).encode()}
    link = pa.table({"_tamis_row": list(range(25))}).replace_schema_metadata(meta)
    linked = _write(store, "b/part-0.parquet", link)
    sizes = LogicalSizes(store)
    assert sizes.of(base.key) == (base.bytes, 100)
    assert sizes.of(linked.key) == (linked.bytes + base.bytes * 25 // 100, 25)
    assert sizes.total([base, linked]) == (base.bytes + sizes.of(linked.key)[0], False)
    estimate, estimated = sizes.total([base] * 40, most=8)
    assert estimated and estimate == base.bytes * 40


# -- a hand-made k-means run ------------------------------------------------------------------------
def _stage_state(name: str, op: str, rows_in: int, rows_out: int, dropped: dict[str, int]) -> dict[str, Any]:
    return {"name": name, "op": op, "kind": "map", "fingerprint": "f" + name.replace(".", ""), "status": "committed",
            "rows_in": rows_in, "rows_out": rows_out, "dropped": dropped, "seconds": 1.0, "yaml": None,
            "waves_total": 1, "waves_done": 1, "metrics": {}}


def _kmeans_store(root: Path) -> Store:
    """read -> kmeans.assign -> filter: 10 documents in clusters 0 (6) and 1 (4); the filter
    removes 3 of cluster 0 (dedup:semantic) and 1 of cluster 1 (quality:x)."""
    store = Store(str(root))
    ids = [f"d{n}" for n in range(10)]
    cluster = [0] * 6 + [1] * 4
    docs = pa.table({"id": ids, "text": [f"text {n}" for n in range(10)], "source": ["a"] * 5 + ["b"] * 5,
                     "cluster_id": pa.array(cluster, pa.int64())})
    removed = [0, 1, 2, 9]
    reasons = ["dedup:semantic"] * 3 + ["quality:x"]
    states = [_stage_state("read", "read", 10, 10, {}), _stage_state("kmeans.assign", "kmeans.assign", 10, 10, {}),
              _stage_state("filter", "filter", 10, 6, dict(Counter(reasons)))]
    tables = {"read": (docs.drop_columns(["cluster_id"]), None), "kmeans.assign": (docs, None),
              "filter": (docs.filter(pa.array([n not in removed for n in range(10)])),
                         docs.take(removed).append_column("drop_reason", pa.array(reasons)))}
    for state in states:
        prefix = stage_prefix(state["name"], state["fingerprint"])
        kept, rejected = tables[state["name"]]
        result = WaveResult(inputs=[], files=[_write(store, f"{prefix}/wave-0/part-0.parquet", kept)],
                            rejected=[_write(store, f"{prefix}/wave-0/rejected/part-0.parquet", rejected)]
                            if rejected is not None else [], dropped=Counter(state["dropped"]), rows_in=10)
        store.write_json(commit_key(prefix), result.to_json())
    store.write_json(run_json_key("km"), {"run_id": "km", "pipeline": "km", "status": "succeeded",
                                          "stages": states, "config": {"stages": []}})
    return store


def test_kmeans_clusters_count_documents_and_removals_per_cluster(tmp_path: Path) -> None:
    report = report_data.gather(_kmeans_store(tmp_path), "km")
    assert report.kmeans is not None and report.kmeans.stage == "kmeans.assign" and not report.kmeans.sampled
    assert [(c.cluster, c.size, c.removed) for c in report.kmeans.clusters] == [
        (0, 6, {"dedup:semantic": 3}), (1, 4, {"quality:x": 1})]
    assert report.duplicates == () and report.histograms == ()  # the run has neither
    assert {(r.source, r.kept, tuple(sorted(r.removed.items()))) for r in report.sources.rows} == {
        ("a", 2, (("dedup:semantic", 3),)), ("b", 4, (("quality:x", 1),))}


def test_kmeans_counts_are_scaled_from_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _kmeans_store(tmp_path)
    monkeypatch.setattr(report_clusters, "CLUSTER_ROWS", 1)
    monkeypatch.setattr("jobs.report_reading.MIN_ROWS_PER_FILE", 5)
    kmeans = report_data.gather(store, "km").kmeans
    assert kmeans is not None and kmeans.sampled
    assert sum(c.size for c in kmeans.clusters) == 10  # 5 rows read stand for the 10


def test_gather_names_the_runs_there_are(tmp_path: Path) -> None:
    with pytest.raises(InspectError, match="runs there: km"):
        report_data.gather(_kmeans_store(tmp_path), "nope")


# -- real runs, without Ray ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("report")
    uri = str(root / "store")
    for config in ("demo.yaml", "dedup.yaml"):
        run_without_ray(write_config(root, config, uri), config.split(".")[0])
    return Store(uri)


def test_the_funnel_is_run_json_s(stores: Store) -> None:
    report = report_data.gather(stores, "demo")
    state = stores.read_json(run_json_key("demo"))
    assert [(s.name, s.rows_in, s.rows_out, s.dropped) for s in report.funnel] == [
        (s["name"], s["rows_in"], s["rows_out"], s["dropped"]) for s in state["stages"]]
    assert report.output is not None and report.output.rows == state["output"]["rows"] == 416
    assert all(s.bytes_out and not s.bytes_estimated for s in report.funnel)
    assert report.funnel[0].bytes_removed > 0 and report.funnel[-1].bytes_removed > 0
    assert sum(report.reasons.values()) == 495 - 416
    timing = {t.name: t for t in report.timings}
    assert timing["filter"].chain == ("heuristics", "filter") and timing["filter"].rows_per_second


def test_every_document_is_kept_or_removed_once_per_source(stores: Store, sample_expected: dict[str, Any]) -> None:
    sources = report_data.gather(stores, "demo").sources
    assert sources is not None and not sources.sampled
    assert sum(r.total for r in sources.rows) == 495 and sum(r.kept for r in sources.rows) == 416
    lines = {f["source"]: f["lines"] for f in sample_expected["files"].values()}
    assert all(r.total <= lines[r.source] for r in sources.rows if r.source in lines)
    assert {r.source for r in sources.rows} <= set(lines) | {report_data.UNKNOWN_SOURCE}


def test_one_histogram_per_signal_with_the_filter_s_cuts(stores: Store) -> None:
    report = report_data.gather(stores, "demo")
    manifest = Store(report.output.uri).read_json("_MANIFEST.json")
    quality = [c["name"] for c in manifest["schema"] if c["name"].startswith("quality_")]
    assert len(quality) == 8
    assert [h.column for h in report.histograms] == quality
    by_column = {h.column: h for h in report.histograms}
    assert [(c.op, c.value) for c in by_column["quality_word_count"].cuts] == [(">=", 50.0)]
    assert sorted((c.op, c.value) for c in by_column["quality_mean_word_length"].cuts) == [("<=", 10.0), (">=", 3.0)]
    words = by_column["quality_word_count"]
    assert words.stage == "filter" and words.documents == 488 and not words.sampled
    labels = {s.label: len(s.values) for s in words.series}
    assert labels["kept"] == 416 and labels["removed by a rule on this column"] == 13  # quality:word_count
    assert (words.series[1].values < 50).all() and (words.series[0].values >= 50).all()


def test_exact_clusters_hold_the_planted_copies(stores: Store, sample_expected: dict[str, Any]) -> None:
    report = report_data.gather(stores, "demo")
    [exact] = report.duplicates
    assert exact.kind == "exact" and not exact.sampled
    assert exact.copies == len(sample_expected["exact_duplicate_copies"]) == report.reasons["dedup:exact"]
    assert len(exact.examples) == report_clusters.EXAMPLES
    for example in exact.examples:
        assert example.members[0].kept and not any(m.kept for m in example.members[1:])
        assert len(example.members) == min(example.size, report_clusters.MEMBERS)
        assert all(len(m.preview) <= 301 for m in example.members)


def test_near_examples_prefer_clusters_with_a_near_copy(stores: Store, sample_expected: dict[str, Any]) -> None:
    report = report_data.gather(stores, "dedup")
    exact, near = report.duplicates
    assert (exact.kind, near.kind) == ("exact", "near") and near.stage == "minhash_dedup.apply"
    planted = {d["id"] for d in sample_expected["near_duplicates"]}
    assert near.copies >= len(planted) and len(near.examples) == report_clusters.EXAMPLES
    for example in near.examples:
        assert any(m.id in planted and not m.kept for m in example.members), example
        assert example.members[0].kept and example.members[0].id == example.key


def test_removed_documents_show_every_reason_within_the_limit(stores: Store) -> None:
    report = report_data.gather(stores, "demo")
    shown = Counter((d.stage, d.reason) for d in report.removed)
    expected = {(s.name, r): min(n, report_data.REMOVED_EXAMPLES) for s in report.funnel for r, n in s.dropped.items()}
    assert dict(shown) == expected
    invalid = next(d for d in report.removed if d.reason == "read:invalid_utf8")
    assert "planted-bad-utf8" in invalid.preview  # the raw line, bad bytes replaced
    assert all(len(d.preview) <= 301 for d in report.removed)



def test_histograms_from_a_sample_stand_for_every_document(stores: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_signals, "HISTOGRAM_VALUES", 100)
    monkeypatch.setattr("jobs.report_reading.MIN_ROWS_PER_FILE", 50)
    words = next(h for h in report_data.gather(stores, "demo").histograms if h.column == "quality_word_count")
    assert words.sampled and sum(len(s.values) for s in words.series) < 488
    assert words.documents == pytest.approx(488, rel=0.05)  # each value weighted by what it stands for


def test_a_run_that_did_not_finish_reports_what_it_committed(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    config = write_config(tmp_path, "demo.yaml", uri)
    run_without_ray(config, "base")
    run_without_ray(config, "killed", ["stages.2.config.rules.1.keep=quality_word_count >= 120"], FailingExecutor())
    report = report_data.gather(Store(uri), "killed")
    assert report.output is None and report.funnel[-1].name == "filter" and report.funnel[-1].rows_out is None
    assert report.funnel[0].rows_out == 488 and report.sources is not None  # the read stage was reused
    assert "filter" in html_report.render(report)
