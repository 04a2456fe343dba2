"""Chains of read and map stages: their waves stream through all of them in one Ray Data job.

Every stage of a chain still writes and commits its own checkpoint per wave::

    stages/read-<fp>/wave-00003-<inputs>/part-*.parquet
    stages/heuristics-<fp>/wave-00003-<read wave's prefix>/part-*.parquet

A map stage after a read or map stage *follows* its waves: its wave ``w`` maps the files of
the upstream's wave ``w`` and is named after that wave's prefix, so whether the two ran
chained or one after another (a resume after the upstream committed), the wave names and
commits are the same. Per wave, a rerun starts the chain at the first stage without a wave
commit (:meth:`jobs.ledger.StageLedger.run_wave`); nothing committed is computed again.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from jobs import checkpoint as cp
from jobs.checkpoint import Artifact, FileRef
from jobs.ledger import RunContext, StageCommit, StageEntry, StageKind, Stats, Wave
from jobs.parquet_columns import PassThrough, pass_through_columns
from jobs.store import InputFile

_WAVE = re.compile(r"/wave-(\d+)-[0-9a-f]+$")


def follows(plan: list[StageEntry], index: int) -> bool:
    """Whether plan entry ``index`` is a map stage whose upstream is a read or map stage."""
    return index >= 1 and plan[index].kind is StageKind.MAP and plan[index - 1].streams


def chain_from(ctx: RunContext, plan: list[StageEntry], index: int) -> list[StageEntry]:
    """The entries to run together from ``index``, a read or map stage not yet committed: it
    and the following map stages not yet committed (just it when chaining is off)."""
    chain = [plan[index]]
    while ctx.spec.execution.chain_maps and chain[-1].index + 1 < len(plan) and follows(plan, chain[-1].index + 1):
        entry = plan[chain[-1].index + 1]
        if ctx.ledger.committed(entry) is not None:
            break
        chain.append(entry)
    return chain


def run_chain(ctx: RunContext, plan: list[StageEntry], chain: list[StageEntry], files: list[InputFile],
              upstream: StageCommit | None, given: dict[int, Artifact | None]) -> StageCommit:
    """Run ``chain`` wave by wave and commit each of its stages; returns the last one's commit.

    ``given`` maps each map stage's plan index to what it is handed (an artifact, an index
    or a model; see the scheduler)."""
    names = [e.name for e in chain]
    for entry in chain:
        ctx.progress.stage(entry.index, status="running")
    if len(chain) > 1:
        ctx.progress.event(f"{' -> '.join(names)}: chained, each wave streams through all of them")
    waves = _head_waves(ctx, plan, chain[0], files, upstream)
    uris = {f.uri: i for i, f in enumerate(files)}
    columns = None
    if chain[0].kind is StageKind.READ and files and ctx.spec.input.format == "parquet":
        columns = pass_through_columns([f.uri for f in files], ctx.spec.input.field_mapping(), ctx.spec.s3_options())
    started = time.time()

    def run(jobs: list[tuple[list[str], list[str]]]) -> Iterator[tuple[int, Stats]]:
        # every wave of one call starts at the same stage: the same number of prefixes
        entries = chain[len(chain) - len(jobs[0][0]):]
        return _run_waves(ctx, entries, jobs, uris, given, columns)

    results = ctx.ledger.run_waves(chain, waves, run)
    seconds = time.time() - started
    commits = [ctx.ledger.commit_stage(e, r, seconds, len(waves), names if len(chain) > 1 else None)
               for e, r in zip(chain, results)]
    return commits[-1]


def _head_waves(ctx: RunContext, plan: list[StageEntry], head: StageEntry, files: list[InputFile],
                upstream: StageCommit | None) -> list[Wave]:
    """The first stage's waves: by input size, or the upstream's waves when it follows them."""
    wave_bytes = int(ctx.spec.execution.wave_mb * 2**20)
    if head.kind is StageKind.READ:
        return [Wave(n, inputs) for n, inputs in enumerate(cp.plan_waves([(f.uri, f.size) for f in files], wave_bytes))]
    if upstream is None:
        raise RuntimeError(f"{head.name} has no upstream commit")
    if follows(plan, head.index):
        by_wave: dict[str, list[FileRef]] = defaultdict(list)
        for f in upstream.files:
            by_wave[f.key.rsplit("/", 1)[0]].append(f)
        ordered = sorted(by_wave.items(), key=lambda item: _wave_number(item[0]))
        return [Wave(_wave_number(p), [f.key for f in fs], sum(f.rows for f in fs), [p]) for p, fs in ordered]
    rows = {f.key: f.rows for f in upstream.files}
    waves = cp.plan_waves([(f.key, f.bytes) for f in upstream.files], wave_bytes)
    return [Wave(n, inputs, sum(rows[k] for k in inputs)) for n, inputs in enumerate(waves)]


def _wave_number(prefix: str) -> int:
    match = _WAVE.search(prefix)
    if match is None:
        raise RuntimeError(f"{prefix} is not a wave directory; a following map stage needs one")
    return int(match.group(1))


def _run_waves(ctx: RunContext, entries: list[StageEntry], jobs: list[tuple[list[str], list[str]]],
               uris: dict[str, int], given: dict[int, Artifact | None],
               columns: PassThrough | None) -> Iterator[tuple[int, Stats]]:
    """One streaming job over several waves, each ``(prefixes, inputs)``: the first stage on
    the wave's inputs, each later one on what the one before writes; yields each wave's
    stats (by its position in ``jobs``) as it finishes."""
    ex, executor = ctx.spec.execution, ctx.executor
    steps: list[Any] = []
    for position, entry in enumerate(entries):
        if entry.stage is not None:
            stage = entry.stage
            outs = tuple(ctx.output(prefixes[position]) for prefixes, _ in jobs)
            steps.append(executor.MapStep(stage.name, stage.operator, stage.config, outs,
                                          stage.resources, given.get(entry.index), ex.column_files))
    if entries[0].kind is StageKind.READ:
        return executor.run_read([[(uris[u], u) for u in inputs] for _, inputs in jobs], ctx.spec.input,
                                 ctx.spec.s3_options(), tuple(ctx.output(prefixes[0]) for prefixes, _ in jobs),
                                 ex.part_rows, ex.batch_rows, ctx.store, steps, columns)
    return executor.run_map(steps, [inputs for _, inputs in jobs], ctx.store, ex.batch_rows)
