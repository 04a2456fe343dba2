"""What the run report shows, gathered from the store alone: ``run.json``, the stages' commits,
``_MANIFEST.json`` and stage files read by column (jobs/report_reading.py says how cheaply).

:func:`gather` returns a :class:`RunReport`: the funnel (documents and bytes per stage,
removals per reason), the time of each stage, kept and removed documents per source, the
signal histograms (jobs/report_signals.py), duplicate and k-means clusters
(jobs/report_clusters.py) and a few removed documents per drop reason. A section the run has
no data for is empty, and the page leaves it out.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from jobs.checkpoint import run_json_key
from jobs.part_reader import iter_file_batches, logical_columns
from jobs.report_clusters import DuplicateClusters, KMeansClusters, duplicate_clusters, kmeans_clusters
from jobs.report_reading import CommittedStage, LogicalSizes, committed_stages, count_by, matching_rows, raw_preview, \
    sample_columns
from jobs.report_signals import SignalHistogram, gather_histograms
from jobs.stage_rows import InspectError, list_runs, load_run
from jobs.store import Store
from operators.base import DROP_REASON

SOURCE_ROWS = 1_000_000
"""Most rows read per stage to count documents per source."""
REMOVED_EXAMPLES = 3
"""Removed documents shown per stage and drop reason."""
UNKNOWN_SOURCE = "(none)"


@dataclass(frozen=True)
class FunnelStage:
    """One stage of the funnel: documents in and out, removals by reason, stored bytes."""

    name: str
    op: str
    status: str
    rows_in: int | None
    rows_out: int | None
    dropped: dict[str, int]
    bytes_out: int | None  # logical bytes of its document files (a linked file's share of its base)
    bytes_estimated: bool
    bytes_removed: int  # bytes of its rejected files (rows stored whole)

    @property
    def removed(self) -> int:
        return sum(self.dropped.values())


@dataclass(frozen=True)
class StageTiming:
    """What one stage cost, as run.json and its commit record it."""

    name: str
    kind: str
    status: str
    waves: str
    seconds: float | None
    rows_in: int | None
    rows_per_second: float | None
    chain: tuple[str, ...]  # the stages it ran with in one job, sharing the time
    resources: str  # what the YAML asked for per task or actor; tamis measures no CPU or memory use
    counters: dict[str, float]


@dataclass(frozen=True)
class SourceRow:
    source: str
    kept: int
    removed: dict[str, int]  # drop reason -> documents

    @property
    def total(self) -> int:
        return self.kept + sum(self.removed.values())


@dataclass(frozen=True)
class SourceBreakdown:
    rows: tuple[SourceRow, ...]  # largest source first
    reasons: tuple[str, ...]
    sampled: bool


@dataclass(frozen=True)
class RemovedDocument:
    stage: str
    reason: str
    id: str | None
    source: str | None
    preview: str


@dataclass(frozen=True)
class OutputSummary:
    uri: str
    rows: int
    bytes: int
    files: int


@dataclass(frozen=True)
class RunReport:
    """Everything the page shows."""

    run_id: str
    pipeline: str
    status: str
    store: str
    started_at: float | None
    wall_seconds: float | None
    error: str | None
    output: OutputSummary | None
    funnel: tuple[FunnelStage, ...]
    timings: tuple[StageTiming, ...]
    sources: SourceBreakdown | None
    histograms: tuple[SignalHistogram, ...]
    duplicates: tuple[DuplicateClusters, ...]
    kmeans: KMeansClusters | None
    removed: tuple[RemovedDocument, ...]
    gather_seconds: float

    @property
    def reasons(self) -> dict[str, int]:
        """Documents removed per drop reason over all stages, most first."""
        total: Counter[str] = Counter()
        for stage in self.funnel:
            total.update(stage.dropped)
        return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


def gather(store: Store, run_id: str) -> RunReport:
    """The report of run ``run_id`` in ``store``.

    Raises:
        InspectError: no such run; the message lists the runs in the store.
    """
    started = time.time()
    state = store.read_json(run_json_key(run_id))
    if state is None:
        raise InspectError(f"no run {run_id!r} in {store.uri} (runs there: {', '.join(list_runs(store)) or 'none'})")
    run = load_run(store, run_id)
    stages = committed_stages(store, run)
    by_name = {s.name: s for s in stages}
    sizes = LogicalSizes(store)
    funnel = tuple(_funnel_stage(s, by_name.get(s["name"]), sizes) for s in state.get("stages", []))
    timings = tuple(_timing(s, by_name.get(s["name"]), run.config) for s in state.get("stages", []))
    return RunReport(
        run_id=run_id, pipeline=state.get("pipeline", ""), status=state.get("status", ""), store=store.uri,
        started_at=state.get("started_at"), wall_seconds=state.get("wall_seconds"), error=state.get("error"),
        output=_output(store, state.get("output")), funnel=funnel, timings=timings,
        sources=source_breakdown(store, stages), histograms=tuple(gather_histograms(store, run, stages)),
        duplicates=tuple(duplicate_clusters(store, stages)), kmeans=kmeans_clusters(store, stages),
        removed=tuple(removed_documents(store, stages)), gather_seconds=time.time() - started)


def _funnel_stage(state: dict[str, Any], stage: CommittedStage | None, sizes: LogicalSizes) -> FunnelStage:
    bytes_out, estimated = sizes.total(stage.result.files) if stage is not None else (None, False)
    removed = sum(f.bytes for f in stage.result.rejected) if stage is not None else 0
    return FunnelStage(state["name"], state.get("op") or state["name"], state.get("status", ""),
                       state.get("rows_in"), state.get("rows_out"), dict(state.get("dropped") or {}),
                       bytes_out, estimated, removed)


def _timing(state: dict[str, Any], stage: CommittedStage | None, config: dict[str, Any]) -> StageTiming:
    seconds, rows_in = state.get("seconds"), state.get("rows_in")
    waves = f"{state.get('waves_done', 0)}/{state['waves_total']}" if state.get("waves_total") else ""
    chain = stage.chain if stage is not None else ()
    return StageTiming(state["name"], state.get("kind", ""), state.get("status", ""), waves, seconds, rows_in,
                       rows_in / seconds if seconds and rows_in else None, chain,
                       _resources(state.get("yaml"), config), dict(state.get("metrics") or {}))


def _resources(yaml: str | None, config: dict[str, Any]) -> str:
    """The ``resources:`` the YAML set for a stage, as ``num_cpus=2, memory_mb=4096``."""
    if not yaml or not yaml.startswith("stages["):
        return ""
    index = int(yaml[len("stages["):-1])
    entries = config.get("stages") or []
    given = (entries[index].get("resources") or {}) if 0 <= index < len(entries) else {}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in given.items() if v is not None)


def _output(store: Store, output: dict[str, Any] | None) -> OutputSummary | None:
    """The output as its manifest lists it (None before a run has written one)."""
    if not output:
        return None
    manifest = Store(output["uri"], store.options).read_json("_MANIFEST.json") or {}
    files = manifest.get("files") or []
    return OutputSummary(output["uri"], int(manifest.get("rows_out", output.get("rows", 0))),
                         sum(int(f.get("bytes", 0)) for f in files), len(files))


def source_breakdown(store: Store, stages: list[CommittedStage]) -> SourceBreakdown | None:
    """Documents per source: kept (the last committed stage's documents) and removed by each
    stage per reason (its rejected rows); None when no stage has a ``source`` column."""
    if not stages or not stages[-1].has("source"):
        return None
    last = stages[-1]
    kept_sample = sample_columns(store, last.result.files, ["source"], SOURCE_ROWS)
    kept: Counter[str] = Counter()
    for (source,), n in count_by(kept_sample.table(), ["source"]).items():
        kept[source or UNKNOWN_SOURCE] += round(n * kept_sample.scale)
    removed: dict[str, Counter[str]] = defaultdict(Counter)
    sampled = kept_sample.sampled
    for stage in stages:
        rejected = stage.result.rejected
        if not rejected or not {"source", DROP_REASON} <= set(logical_columns(store, rejected[0].key)):
            continue
        got = sample_columns(store, rejected, ["source", DROP_REASON], SOURCE_ROWS)
        sampled = sampled or got.sampled
        for (source, reason), n in count_by(got.table(), ["source", DROP_REASON]).items():
            removed[source or UNKNOWN_SOURCE][reason] += round(n * got.scale)
    names = set(kept) | set(removed)
    rows = sorted((SourceRow(s, kept[s], dict(removed[s])) for s in names), key=lambda r: (-r.total, r.source))
    reasons = sorted({r for row in rows for r in row.removed})
    return SourceBreakdown(tuple(rows), tuple(reasons), sampled)


def removed_documents(store: Store, stages: list[CommittedStage]) -> list[RemovedDocument]:
    """Up to :data:`REMOVED_EXAMPLES` removed documents per stage and drop reason, text cut to
    a preview. The drop reasons of each rejected file are read first (one small column), so
    text is read only from files that hold a reason still short of examples."""
    found: list[RemovedDocument] = []
    for stage in stages:
        need = {reason: REMOVED_EXAMPLES for reason in sorted(stage.result.dropped)}
        files: list[str] = []
        covered: Counter[str] = Counter()
        for ref in stage.result.rejected:
            if all(covered[r] >= n for r, n in need.items()):
                break
            here = _reasons_in(store, ref.key)
            if any(here[r] and covered[r] < n for r, n in need.items()):
                files.append(ref.key)
                covered.update(here)
        if not files:
            continue
        columns = [c for c in ("id", "source", "text", "raw") if c in logical_columns(store, files[0])]
        for batch in matching_rows(store, files, DROP_REASON, list(need), columns):
            for reason, n in need.items():
                # only the rows still wanted become Python objects (``raw`` may be large)
                rows = batch.filter(pc.equal(batch[DROP_REASON], reason)).slice(0, n) if n else batch.slice(0, 0)
                need[reason] -= rows.num_rows
                plain = rows.drop_columns([c for c in ("raw",) if c in rows.column_names]).to_pylist()
                raws = rows["raw"].to_pylist() if "raw" in rows.column_names else [None] * rows.num_rows
                found += [RemovedDocument(stage.name, reason, row.get("id"), row.get("source"),
                                          row.get("text") or raw_preview(raw)) for row, raw in zip(plain, raws)]
            if not any(need.values()):
                break
    return found


def _reasons_in(store: Store, key: str) -> Counter[str]:
    """Rows per drop reason in one rejected file (only its ``drop_reason`` column is read)."""
    counts: Counter[str] = Counter()
    for batch in iter_file_batches(store, key, 65536, [DROP_REASON]):
        counts.update({reason: n for (reason,), n in count_by(batch, [DROP_REASON]).items()})
    return counts
