"""The stage ledger: a run's plan entries, what the store holds committed for them, and the
one loop through which every stage skips or runs its waves.

:meth:`StageLedger.run_wave` is the only place that decides whether a wave runs: it reads
the wave's commit for each stage it covers (a chain covers several), reuses those found up
to the first missing one, runs the rest in one call and commits each stage's share of the
stats rows. It knows nothing of Ray (what runs a wave is a callable handed to it), so the
scheduler can be tested against a local store without a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from jobs import checkpoint as cp
from jobs.checkpoint import FileRef, WaveResult
from jobs.parts import FileOutput
from jobs.spec import PipelineSpec
from jobs.pipeline_load import PlannedStage
from jobs.store import Store

Stats = list[dict[str, Any]]
"""Stats rows as tasks return them (jobs/parts.py): one per file written, plus metrics."""


class StageKind(str, Enum):
    """How a stage runs (jobs/execute.py): the read stage, or an operator kind."""

    READ = "read"
    MAP = "map"
    GROUP = "group"
    FIT = "fit"


@dataclass(frozen=True)
class StageEntry:
    """One stage of a run's plan: the read stage (``stage`` None) or a primitive operator."""

    index: int  # position in the plan; 0 is the read stage
    name: str
    op: str
    kind: StageKind
    fingerprint: str
    stage: PlannedStage | None = None
    info: dict[str, Any] = field(default_factory=dict)  # facts for run.json (describe(), state, model)

    @property
    def prefix(self) -> str:
        return cp.stage_prefix(self.name, self.fingerprint)

    def wave_prefix(self, number: int, named_by: list[str]) -> str:
        return cp.wave_prefix(self.name, self.fingerprint, number, named_by)

    @property
    def streams(self) -> bool:
        """Read and map stages stream their input file by file (jobs/chain.py)."""
        return self.kind in (StageKind.READ, StageKind.MAP)

    @property
    def emits_artifact(self) -> bool:
        """Whether later stages are given what this stage wrote as their artifact."""
        return self.kind is StageKind.FIT or (
            self.kind is StageKind.GROUP and self.stage is not None and self.stage.operator.emits == "artifact")

    def initial_state(self) -> dict[str, Any]:
        """This stage's entry in run.json before it runs."""
        where = f"stages[{self.stage.yaml_index}]" if self.stage is not None else None
        return {"name": self.name, "op": self.op, "kind": self.kind.value, "fingerprint": self.fingerprint,
                "yaml": where, "info": self.info, "status": "pending", "waves_total": None, "waves_done": 0, "rows_in": None,
                "rows_out": None, "dropped": {}, "metrics": {}, "seconds": None, "error": None}


@dataclass(frozen=True)
class StageCommit:
    """A stage's ``_COMMIT.json``: what all its waves wrote."""

    fingerprint: str
    result: WaveResult
    waves: int
    seconds: float

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "StageCommit":
        return cls(body["fingerprint"], WaveResult.from_json(body), int(body.get("waves") or 1),
                   float(body.get("seconds") or 0))

    @property
    def files(self) -> list[FileRef]:
        return self.result.files

    @property
    def rows_out(self) -> int:
        return self.result.rows_out

    def state_fields(self) -> dict[str, Any]:
        """What run.json shows of a committed stage."""
        return {"rows_in": self.result.rows_in, "rows_out": self.rows_out, "dropped": dict(self.result.dropped),
                "metrics": dict(self.result.metrics), "seconds": round(self.seconds, 3)}


class Progress(Protocol):
    """What the ledger and the stage runners report to: the run's events and stage states."""

    def event(self, message: str) -> None:
        """A line for the run's log and run.json's events."""

    def stage(self, index: int, **fields: Any) -> None:
        """Update plan entry ``index``'s state in run.json."""


@dataclass(frozen=True)
class Wave:
    """One wave to run: its number, its input files, their rows (None: counted from the
    output) and what names it (the inputs, or the upstream wave it follows)."""

    number: int
    inputs: list[str]
    rows_in: int | None = None
    named_by: list[str] | None = None


class StageLedger:
    """Commits in the store, read and written through one protocol."""

    def __init__(self, store: Store, progress: Progress, stop_check: Callable[[], None] | None = None) -> None:
        self.store, self.progress = store, progress
        self.stop_check = stop_check  # raises at a wave boundary of a run asked to stop (jobs/stop_request.py)
        # called with (entries, their results) as each wave commits (jobs/output_waves.py)
        self.wave_listener: Callable[[Sequence[StageEntry], list[WaveResult]], None] | None = None

    def committed(self, entry: StageEntry) -> StageCommit | None:
        body = self.store.read_json(cp.commit_key(entry.prefix))
        return None if body is None else StageCommit.from_json(body)

    def reuse(self, entry: StageEntry) -> StageCommit | None:
        """The stage's commit, reported as cached, or None when it must run."""
        done = self.committed(entry)
        if done is not None:
            self.progress.stage(entry.index, **{**done.state_fields(), "status": "cached", "seconds": 0.0,
                                                "waves_total": done.waves, "waves_done": done.waves})
            self.progress.event(f"{entry.name}: committed earlier (fingerprint {entry.fingerprint}), skipped")
        return done

    def run_wave(self, prefixes: Sequence[str], inputs: list[str], rows_in: int | None,
                 run: Callable[[int, list[str]], Stats]) -> tuple[list[WaveResult], int]:
        """One wave of the stages writing under ``prefixes`` (in chain order).

        Commits found are reused up to the first missing one; ``run(start, inputs)`` then runs
        the stages from ``start`` on, the first of them on ``inputs`` (the last reused stage's
        files). Returns each stage's result and how many were reused.
        """
        results = self._reused(prefixes)
        reused = len(results)
        if reused == len(prefixes):
            return results, reused
        if reused:  # resume inside a chain: the stage before committed this wave
            inputs, rows_in = [f.key for f in results[-1].files], results[-1].rows_out
        started = time.time()
        stats = run(reused, inputs)
        return self._commit_wave(prefixes, results, inputs, rows_in, stats, time.time() - started), reused

    def _reused(self, prefixes: Sequence[str]) -> list[WaveResult]:
        """The committed results of ``prefixes``, up to the first missing commit."""
        results: list[WaveResult] = []
        for prefix in prefixes:
            body = self.store.read_json(cp.commit_key(prefix))
            if body is None:
                break
            results.append(WaveResult.from_json(body))
        return results

    def _commit_wave(self, prefixes: Sequence[str], results: list[WaveResult], inputs: list[str],
                     rows_in: int | None, stats: Stats, seconds: float) -> list[WaveResult]:
        """Commit the stages of one wave after the ``results`` already committed, from the
        stats rows of the job that ran them (``inputs``: the first one's input files)."""
        results = list(results)
        for prefix in prefixes[len(results):]:
            # in a chain every stage's rows are under its own prefix; a lone stage's may not be
            # (passthrough rows name upstream files, a fit's metrics no file at all)
            mine = stats if len(prefixes) == 1 else [
                r for r in stats if r["key"] == prefix or r["key"].startswith(prefix + "/")]
            result = WaveResult.from_stats(inputs, mine, rows_in, seconds)
            result = WaveResult.from_json(cp.commit(self.store, cp.commit_key(prefix), result.to_json()))
            results.append(result)
            inputs, rows_in = [f.key for f in result.files], result.rows_out
        return results

    def run_waves(self, entries: Sequence[StageEntry], waves: Sequence[Wave],
                  run: Callable[[list[tuple[list[str], list[str]]]], Iterator[tuple[int, Stats]]]) -> list[WaveResult]:
        """Every wave of ``entries`` (a chain; often one stage), each committed on its own.

        The first entry's wave is named by ``wave.named_by``; each later entry's by the wave
        of the entry before it, so chained or not, a wave has the same name and commit.
        ``run(jobs)`` runs the stages for several waves at once, each ``(prefixes, inputs)``
        (the stages writing under ``prefixes``, the first on ``inputs``), and yields each
        wave's stats rows by its position in ``jobs`` as it finishes. Waves a rerun finds
        partly committed run first, one job each, from their first stage without a commit;
        every wave with nothing committed then runs in one job, so stage actors start once.
        Returns each entry's results merged, in wave order.
        """
        for entry in entries:
            self.progress.stage(entry.index, waves_total=len(waves))
        named: list[list[str]] = []
        for wave in waves:
            prefixes = [entries[0].wave_prefix(wave.number, wave.named_by or wave.inputs)]
            for entry in entries[1:]:
                prefixes.append(entry.wave_prefix(wave.number, [prefixes[-1]]))
            named.append(prefixes)
        by_wave: dict[int, list[WaveResult]] = {}
        fresh: list[int] = []
        for n, (wave, prefixes) in enumerate(zip(waves, named)):
            if not self.store.exists(cp.commit_key(prefixes[0])):
                fresh.append(n)
                continue

            def one(start: int, inputs: list[str], prefixes: list[str] = prefixes) -> Stats:
                return next(iter(run([(prefixes[start:], inputs)])))[1]

            by_wave[n], reused = self.run_wave(prefixes, wave.inputs, wave.rows_in, one)
            self._committed(entries, by_wave[n])
            self._report(entries, by_wave, n, len(waves), reused)
        if fresh:
            started = time.time()
            for position, stats in run([(named[n], waves[n].inputs) for n in fresh]):
                n = fresh[position]
                by_wave[n] = self._commit_wave(named[n], [], waves[n].inputs, waves[n].rows_in, stats,
                                               time.time() - started)
                started = time.time()
                self._committed(entries, by_wave[n])
                self._report(entries, by_wave, n, len(waves), 0)
        return [cp.merge([by_wave[n][k] for n in sorted(by_wave)]) for k in range(len(entries))]

    def _committed(self, entries: Sequence[StageEntry], results: list[WaveResult]) -> None:
        if self.wave_listener is not None:
            self.wave_listener(entries, results)

    def _report(self, entries: Sequence[StageEntry], by_wave: dict[int, list[WaveResult]], n: int, total: int,
                reused: int) -> None:
        for k, entry in enumerate(entries):
            result = by_wave[n][k]
            self.progress.event(f"{entry.name}: wave {n + 1}/{total} " + (
                "committed earlier, skipped" if k < reused else f"committed ({result.rows_out:,} rows)"))
            self.progress.stage(entry.index, waves_done=len(by_wave),
                                rows_out=sum(r[k].rows_out for r in by_wave.values()))
        if self.stop_check is not None and len(by_wave) < total:  # the last wave ends the stage anyway
            self.stop_check()

    def commit_stage(self, entry: StageEntry, result: WaveResult, seconds: float, waves: int = 1,
                     chain: list[str] | None = None) -> StageCommit:
        """Create the stage's commit (or adopt a concurrent writer's) and report it."""
        body = {"stage": entry.name, "op": entry.op, "kind": entry.kind.value, "fingerprint": entry.fingerprint,
                "config": None if entry.stage is None else entry.stage.config.model_dump(mode="json"),
                **result.to_json(), "waves": waves, "seconds": round(seconds, 3), **({"chain": chain} if chain else {})}
        done = StageCommit.from_json(cp.commit(self.store, cp.commit_key(entry.prefix), body))
        self.progress.stage(entry.index, status="committed", **done.state_fields())
        self.progress.event(f"{entry.name}: committed {done.rows_out:,} of {done.result.rows_in:,} rows "
                            f"in {done.seconds:.1f}s")
        return done


@dataclass(frozen=True)
class RunContext:
    """What the stage runners (chain, rounds, output) share: the spec, the store, the ledger,
    where progress goes and what executes work (jobs.execute on Ray; a stand-in in tests)."""

    spec: PipelineSpec
    store: Store
    ledger: StageLedger
    executor: Any

    @property
    def progress(self) -> Progress:
        return self.ledger.progress

    def output(self, prefix: str) -> FileOutput:
        """Where a task writes its checkpoint files under ``prefix``."""
        return FileOutput(self.store, prefix, self.spec.execution.checkpoint_compression)

