"""The run report's page (jobs/html_report.py, jobs/report_plots.py): escaping, no external
references, sections only where the run has data, `tamis report` and the end-of-run hook."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs import cli, html_report
from jobs.report_clusters import ClusterExample, ClusterMember, DuplicateClusters
from jobs.report_data import FunnelStage, RemovedDocument, RunReport, SourceBreakdown, SourceRow, StageTiming
from jobs.report_signals import Cut, Series, SignalHistogram
from jobs.store import Store
from tests.conftest import REPO
from tests.support.html_page import Page
from tests.support.inspect_stores import run_without_ray, write_config

HOSTILE = '<script>alert("x")</script><img src="http://evil.example/x.png">$\\frac{1}{0}$'


def _report(**changes: object) -> RunReport:
    """A report of made-up figures with hostile text in every field a run's data can set."""
    funnel = (FunnelStage("read", "read", "committed", 10, 8, {HOSTILE: 2}, 1000, False, 100),
              FunnelStage(HOSTILE, "filter", "committed", 8, 5, {"quality:x": 3}, 600, True, 300))
    fields = dict(
        run_id="r1", pipeline=HOSTILE, status="succeeded", store="/tmp/s", started_at=1.0, wall_seconds=2.0,
        error=None, output=None, funnel=funnel,
        timings=(StageTiming(HOSTILE, "map", "committed", "1/1", 1.5, 8, 5.3, (HOSTILE, "read"), "num_cpus=2",
                             {HOSTILE: 1.0}),),
        sources=SourceBreakdown((SourceRow(HOSTILE, 5, {"quality:x": 3, HOSTILE: 2}),), ("quality:x", HOSTILE), False),
        histograms=(SignalHistogram("quality_x", "filter", False,
                                    (Series("kept", np.arange(5.0), 1.0), Series("removed by a rule on this column",
                                                                                 np.array([0.5]), 2.0)),
                                    (Cut("quality_x", ">=", 1.0, "quality:x"),), False),
                    SignalHistogram("quality_ok", "filter", True, (Series("documents", np.array([0.0, 1.0, 1.0]), 1.0),),
                                    (), True)),
        duplicates=(DuplicateClusters("exact", "exact_dedup.keep", {2: 3, 5: 1}, (
            ClusterExample("h1", 2, (ClusterMember("a", HOSTILE, HOSTILE, True), ClusterMember("b", None, "", False))),),
            False),),
        kmeans=None,
        removed=(RemovedDocument("read", HOSTILE, HOSTILE, None, HOSTILE),),
        gather_seconds=0.1)
    fields.update(changes)
    return RunReport(**fields)  # type: ignore[arg-type]


def test_every_value_is_escaped_and_nothing_is_loaded() -> None:
    html = html_report.render(_report())
    page = Page(html)
    assert "<script" not in html and "<img" not in html and page.tags["script"] == 0 and page.tags["img"] == 0
    assert html.count("&lt;script&gt;") >= 8  # the hostile text shown as text, wherever it is
    links = page.values("src") + page.values("href") + page.values("xlink:href")
    assert all(link.startswith("#") for link in links), links
    assert page.tags["link"] == 0 and page.tags["iframe"] == 0
    assert page.tags["svg"] == 6  # funnel, reasons, sources, two histograms, cluster sizes
    ids = page.values("id")
    assert len(ids) == len(set(ids))  # each figure's ids prefixed: no clash between figures


def test_sections_a_run_has_no_data_for_are_left_out() -> None:
    page = Page(html_report.render(_report(histograms=(), duplicates=(), sources=None, removed=())))
    sections = page.values("id")
    assert "funnel" in sections and "stages" in sections
    assert not {"signals", "duplicates", "kmeans", "sources", "removed"} & set(sections)


def test_the_page_needs_no_matplotlib_at_import() -> None:
    """`tamis run` starts without paying for matplotlib: only making a report imports it."""
    code = "import sys, jobs.cli, jobs.html_report; assert 'matplotlib' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("html")
    uri = str(root / "store")
    run_without_ray(write_config(root, "demo.yaml", uri), "demo")
    return Store(uri)


def test_tamis_report_writes_where_asked(demo_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sub" / "r.html"
    assert cli.main(["report", "demo", "--store", demo_store.uri, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    assert "quality_word_count" in out.read_text()
    assert cli.main(["report", "demo", "--store", demo_store.uri]) == 0
    assert Path(demo_store.fs_path(html_report.report_key("demo"))).is_file()
    assert cli.main(["report", "nope", "--store", demo_store.uri]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_a_failing_report_is_a_warning(demo_store: Store, caplog: pytest.LogCaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(html_report, "gather", broken)
    with caplog.at_level(logging.WARNING):
        assert html_report.write_after_run(demo_store, "demo") is None
    assert "the run report was not written" in caplog.text and "OSError: disk full" in caplog.text


def test_run_takes_no_report() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["run", "c.yaml", "--no-report"]).no_report
    assert not parser.parse_args(["run", "c.yaml"]).no_report
