"""The run report's plots: matplotlib figures (Agg canvas) written as SVG text for the page.

matplotlib is imported here only, when a plot is drawn, so `tamis run` does not pay for it
at start-up. Text stays text in the SVG (``svg.fonttype: none``: smaller, selectable), and
each figure's element ids get a prefix of their own, since every figure of the page shares
one id space and matplotlib names clip paths and markers alike in every figure.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from jobs.report_clusters import DuplicateClusters, KMeansClusters
from jobs.report_data import FunnelStage, SourceBreakdown
from jobs.report_signals import SignalHistogram

KEPT, REMOVED, OTHER = "#4c78a8", "#e45756", "#f2b447"
REASON_COLORS = ("#e45756", "#f58518", "#f2b447", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b",
                 "#d67195", "#a0522d", "#72b7b2", "#54a24b", "#88d27a", "#fcbf49", "#8c564b", "#c49c94",
                 "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MOST_BARS = 40
"""Most bars of one kind in a plot (the largest sources or clusters); tables list the rest."""
_figures = itertools.count()


@contextmanager
def _figure(width: float, height: float, fixed: bool = False) -> Iterator[tuple[Any, Any]]:
    """A figure on an Agg canvas and its axes, in the report's style. No pyplot: nothing global
    (backend, open figures) changes in the process that makes the report. ``fixed`` margins
    instead of constrained layout, which costs about a third of a small plot's time, where the
    labels are short (a histogram's numbers)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tamis", "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False}):
        fig = Figure(figsize=(width, height), layout=None if fixed else "constrained")
        if fixed:
            fig.subplots_adjust(left=0.15, right=0.97, bottom=0.12, top=0.9)
        FigureCanvasAgg(fig)
        yield fig, fig.subplots()


def to_svg(fig: Any) -> str:
    """``fig`` as an ``<svg>`` element to inline in HTML (no XML prolog, no metadata, ids
    prefixed so they are unique on the page)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    prefix = f"f{next(_figures)}-"
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    return re.sub(r"(#)([^\s\"')]+)", lambda m: f"#{prefix}{m.group(2)}" if m.group(2) in ids else m.group(0), text)


def _label(text: object, most: int = 40) -> str:
    """Text for a tick or legend: cut to ``most`` characters (the tables have it whole; a long
    label would squeeze the axes to nothing), ``$`` escaped or matplotlib would read math."""
    text = str(text)
    return (text if len(text) <= most else text[:most - 1] + "…").replace("$", r"\$")


def funnel_plot(funnel: Sequence[FunnelStage]) -> str:
    """Documents out of each stage, with what it removed stacked on the right."""
    stages = [s for s in funnel if s.rows_out is not None]
    with _figure(7.0, 0.35 * len(stages) + 0.9) as (fig, ax):
        y = np.arange(len(stages))[::-1]
        out = np.array([s.rows_out for s in stages], dtype=float)
        ax.barh(y, out, color=KEPT, label="documents out")
        ax.barh(y, [s.removed for s in stages], left=out, color=REMOVED, label="removed here")
        ax.set_yticks(y, [_label(s.name) for s in stages])
        ax.set_xlabel("documents")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False)
        return to_svg(fig)


def reasons_plot(reasons: dict[str, int]) -> str:
    """Documents removed per drop reason."""
    names = list(reasons)[:MOST_BARS]
    with _figure(7.0, 0.3 * len(names) + 0.8) as (fig, ax):
        y = np.arange(len(names))[::-1]
        ax.barh(y, [reasons[n] for n in names], color=REMOVED)
        ax.set_yticks(y, [_label(n) for n in names])
        ax.set_xlabel("documents removed")
        return to_svg(fig)


def sources_plot(sources: SourceBreakdown) -> str:
    """Per source, kept documents and removed ones by reason, stacked."""
    rows = sources.rows[:MOST_BARS]
    with _figure(7.0, 0.35 * len(rows) + 1.2) as (fig, ax):
        y = np.arange(len(rows))[::-1]
        left = np.array([r.kept for r in rows], dtype=float)
        ax.barh(y, left, color=KEPT, label="kept")
        for n, reason in enumerate(sources.reasons):
            counts = np.array([r.removed.get(reason, 0) for r in rows], dtype=float)
            ax.barh(y, counts, left=left, color=REASON_COLORS[n % len(REASON_COLORS)], label=_label(reason))
            left += counts
        ax.set_yticks(y, [_label(r.source) for r in rows])
        ax.set_xlabel("documents")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
        return to_svg(fig)


def histogram_plot(histogram: SignalHistogram) -> str:
    """The signal's distribution, its series stacked, each cut a labelled vertical line."""
    series = [s for s in histogram.series if len(s.values)]
    colors = {"kept": KEPT, "documents": KEPT, "removed by a rule on this column": REMOVED}
    with _figure(4.6, 2.7, fixed=True) as (fig, ax):
        values = np.concatenate([s.values for s in series]) if series else np.empty(0)
        edges = _edges(values, [c.value for c in histogram.cuts], histogram.boolean)
        if series:
            # stepfilled: one outline per series instead of a rectangle per bin (smaller, faster)
            ax.hist([np.clip(s.values, edges[0], edges[-1]) for s in series], bins=edges, stacked=True,
                    histtype="bar" if histogram.boolean else "stepfilled",
                    weights=[np.full(len(s.values), s.weight) for s in series],
                    color=[colors.get(s.label, OTHER) for s in series], label=[s.label for s in series])
        for cut in histogram.cuts:
            ax.axvline(cut.value, color="black", linestyle="--", linewidth=1)
            ax.annotate(f"keep {cut.op} {cut.value:g}", (cut.value, 1.0), xycoords=("data", "axes fraction"),
                        fontsize=7, rotation=90, ha="right", va="top")
        if histogram.boolean:
            ax.set_xticks([0, 1], ["false", "true"])
        ax.set_title(_label(histogram.column), fontsize=9)
        ax.set_ylabel("documents")
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=7)
        return to_svg(fig)


def _edges(values: np.ndarray, cuts: list[float], boolean: bool) -> np.ndarray:
    """Bin edges: two bins for a boolean; else 40 from the least value to the 99.5th
    percentile (the long tail piles into the last bin), widened to show every cut."""
    if boolean:
        return np.array([-0.5, 0.5, 1.5])
    if not len(values):
        low, high = (min(cuts), max(cuts)) if cuts else (0.0, 1.0)
    else:
        low, high = float(values.min()), float(np.quantile(values, 0.995))
    low, high = min([low, *cuts]), max([high, *cuts])
    if high <= low:
        high = low + 1.0
    return np.linspace(low, high, 41)


def cluster_sizes_plot(clusters: DuplicateClusters) -> str:
    """Clusters per size (documents per cluster), a bar per size, or log-spaced bins when
    there are many sizes."""
    sizes = np.array(list(clusters.sizes), dtype=float)
    counts = np.array(list(clusters.sizes.values()), dtype=float)
    with _figure(4.6, 2.6) as (fig, ax):
        if len(sizes) <= 25:
            ax.bar(np.arange(len(sizes)), counts, color=REMOVED)
            ax.set_xticks(np.arange(len(sizes)), [str(int(s)) for s in sizes])
        else:
            ax.hist(sizes, bins=np.geomspace(2, sizes.max() + 1, 30), weights=counts, color=REMOVED)
            ax.set_xscale("log")
        ax.set_xlabel("documents in the cluster")
        ax.set_ylabel("clusters")
        ax.set_title(_label(f"{clusters.kind} duplicates ({clusters.stage})"), fontsize=9)
        return to_svg(fig)


def kmeans_plot(kmeans: KMeansClusters) -> str:
    """The largest clusters: documents kept and removed (by reason), stacked."""
    clusters = kmeans.clusters[:MOST_BARS]
    reasons = sorted({r for c in clusters for r in c.removed})
    with _figure(7.0, 2.8) as (fig, ax):
        x = np.arange(len(clusters))
        removed = np.array([sum(c.removed.values()) for c in clusters], dtype=float)
        bottom = np.array([c.size for c in clusters], dtype=float) - removed
        ax.bar(x, bottom, color=KEPT, label="kept")
        for n, reason in enumerate(reasons):
            counts = np.array([c.removed.get(reason, 0) for c in clusters], dtype=float)
            ax.bar(x, counts, bottom=bottom, color=REASON_COLORS[n % len(REASON_COLORS)], label=_label(reason))
            bottom += counts
        ax.set_xticks(x, [str(c.cluster) for c in clusters], fontsize=7, rotation=90 if len(x) > 20 else 0)
        ax.set_xlabel("cluster")
        ax.set_ylabel("documents")
        ax.legend(frameon=False, fontsize=7)
        return to_svg(fig)
