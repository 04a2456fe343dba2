"""`tamis report`: a run's report as one self-contained HTML page, made from the store alone.

The page (jobs/templates/report.html.j2) has no script and loads nothing: its plots are SVG
inlined by jobs/report_plots.py, its style is inline, so it opens offline and can be mailed
or attached. jinja2 escapes every value put in it (autoescape on); only the SVG that
matplotlib wrote, which escapes its own text, goes in as markup. What it shows is gathered by
jobs/report_data.py. `tamis run` writes it to ``runs/<id>/report.html`` in the store when a
run succeeds (:func:`write_after_run`), and a failure there is a warning, never the run's.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

from jobs.report_data import RunReport, gather
from jobs.store import Store, is_s3

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def report_key(run_id: str) -> str:
    """Where a run's report lives in the store."""
    return f"runs/{run_id}/{REPORT_FILE}"


@dataclass(frozen=True)
class Plots:
    """The page's plots as SVG text, each None where the run has nothing to plot."""

    funnel: str | None
    reasons: str | None
    sources: str | None
    histograms: tuple[str, ...]  # one per report.histograms
    duplicates: tuple[str, ...]  # one per report.duplicates
    kmeans: str | None


def draw(report: RunReport) -> Plots:
    """Every plot of ``report`` (matplotlib is imported now, not before)."""
    from jobs import report_plots as rp

    return Plots(
        funnel=rp.funnel_plot(report.funnel) if any(s.rows_out is not None for s in report.funnel) else None,
        reasons=rp.reasons_plot(report.reasons) if report.reasons else None,
        sources=rp.sources_plot(report.sources) if report.sources and report.sources.rows else None,
        histograms=tuple(rp.histogram_plot(h) for h in report.histograms),
        duplicates=tuple(rp.cluster_sizes_plot(d) for d in report.duplicates),
        kmeans=rp.kmeans_plot(report.kmeans) if report.kmeans and report.kmeans.clusters else None)


def render(report: RunReport) -> str:
    """The page for ``report``."""
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    env = Environment(loader=PackageLoader("jobs", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_number, size=_size, secs=_seconds, when=_when)
    plots = draw(report)
    return env.get_template("report.html.j2").render(
        report=report, svg=lambda text: Markup(text) if text else "", plots=plots,
        made_at=_when(datetime.datetime.now().timestamp()))


def write_report(store: Store, run_id: str, out: str | None = None) -> str:
    """Make the report of ``run_id`` and write it to ``out`` (a path or ``s3://`` URI), else
    to ``runs/<id>/report.html`` in the store; returns where it went.

    Raises:
        jobs.stage_rows.InspectError: no such run in the store.
    """
    html = render(gather(store, run_id)).encode()
    if out is None:
        target, key = store, report_key(run_id)
    elif is_s3(out):
        parent, _, key = out.rstrip("/").rpartition("/")
        target = Store(parent, store.options)
    else:
        path = os.path.abspath(out)
        target, key = Store(os.path.dirname(path)), os.path.basename(path)
    with target.open_output(key) as sink:
        sink.write(html)
    return target.url(key)


def write_after_run(store: Store, run_id: str) -> str | None:
    """:func:`write_report` at the end of a successful run; a failure is logged and the run
    goes on (the report describes the run, it is not part of it)."""
    try:
        return write_report(store, run_id)
    except Exception as err:  # noqa: BLE001 - any failure: the run itself succeeded
        log.warning("the run report was not written (the run succeeded; `tamis report %s` retries): %s: %s",
                    run_id, type(err).__name__, err)
        log.debug("run report failure", exc_info=True)
        return None


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def _size(value: int | None) -> str:
    if value is None:
        return "–"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{value} B"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} s" if value < 10 else f"{value:,.1f} s"


def _when(value: float | None) -> str:
    if not value:
        return "–"
    return datetime.datetime.fromtimestamp(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
