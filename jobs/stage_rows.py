"""A run's committed stages as rows, for the read-only commands (`tamis show`, `diff`, `explain`).

A run's ``run.json`` lists its planned stages (name, operator, fingerprint, status); a stage's
files are the ones its ``_COMMIT.json`` names (jobs/checkpoint.py), never a listing, so stray
files of a dead attempt are never read. Kept files are read as *logical* rows (column and row
files joined back to their bases, jobs/part_reader.py), streamed in batches and projected
to the columns asked for, so a huge stage is read only as far as a caller consumes it.
Everything goes through :class:`jobs.store.Store`: a local store and S3 alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs import checkpoint as cp
from jobs.part_reader import iter_file_batches, logical_columns
from jobs.store import Store
from operators.filtering.expression import CompiledExpression, ExpressionError, parse_expression

log = logging.getLogger(__name__)

BATCH_ROWS = 4096
"""Rows per streamed batch: small enough that `show --limit 20` reads little of a big file."""
COMMITTED = ("committed", "cached")


class InspectError(Exception):
    """Input the read-only commands cannot answer (an unknown run, stage, column or id, an
    expression that does not parse, a stage not committed yet); the message names what exists."""


@dataclass(frozen=True)
class RunStage:
    """One stage entry of ``run.json``."""

    index: int  # position in the run's plan; 0 is the read stage
    name: str
    op: str
    fingerprint: str
    status: str
    yaml: str | None  # where in the config it came from, e.g. "stages[1]"

    @property
    def prefix(self) -> str:
        return cp.stage_prefix(self.name, self.fingerprint)


@dataclass(frozen=True)
class RunRecord:
    """What ``runs/<id>/run.json`` says of a run: its stages in order and its config."""

    run_id: str
    pipeline: str
    stages: tuple[RunStage, ...]
    config: dict[str, Any]

    def stage(self, name: str) -> RunStage:
        """The stage called ``name``: a planned stage's name, ``read``, or a composite's name
        (its last part, the one whose output is the composite's).

        Raises:
            InspectError: no such stage; the message lists the run's stages.
        """
        exact = [s for s in self.stages if s.name == name]
        parts = [s for s in self.stages if s.name.startswith(name + ".")]
        if exact:
            return exact[0]
        if parts:
            return parts[-1]
        raise InspectError(f"no stage {name!r} in run {self.run_id}; its stages: "
                           f"{', '.join(s.name for s in self.stages) or 'none yet'}")

    def stages_of(self, op: str) -> list[RunStage]:
        """The stages running operator ``op`` (e.g. ``exact_dedup.keep``), in order."""
        return [s for s in self.stages if s.op == op]

    def stage_config(self, stage: RunStage) -> dict[str, Any]:
        """The config the YAML gave ``stage`` (with ``--set`` overrides), as run.json records it."""
        index = int(stage.yaml[len("stages["):-1]) if stage.yaml and stage.yaml.startswith("stages[") else -1
        if index < 0:  # the read stage, or one the spec inserted (unique_ids: "stages[-1]")
            return {}
        return dict(self.config.get("stages", [])[index].get("config") or {})


@dataclass(frozen=True)
class StageFiles:
    """A committed stage's document files and rejected files, as its commit names them."""

    stage: RunStage
    files: tuple[str, ...]
    rejected: tuple[str, ...]


def list_runs(store: Store) -> list[str]:
    """The run ids with a ``run.json`` in ``store``."""
    return sorted({k.split("/")[1] for k in store.list("runs") if k.endswith("/run.json")})


def load_run(store: Store, run_id: str) -> RunRecord:
    """The run ``run_id`` as its ``run.json`` describes it.

    Raises:
        InspectError: no such run; the message lists the runs in the store.
    """
    state = store.read_json(cp.run_json_key(run_id))
    if state is None:
        raise InspectError(f"no run {run_id!r} in {store.uri} (runs there: {', '.join(list_runs(store)) or 'none'})")
    stages = tuple(RunStage(n, s["name"], s.get("op") or s["name"], s["fingerprint"], s.get("status", ""),
                            s.get("yaml")) for n, s in enumerate(state.get("stages", [])))
    return RunRecord(run_id, state.get("pipeline", ""), stages, state.get("config") or {})


def stage_files(store: Store, run: RunRecord, stage: RunStage) -> StageFiles:
    """The files ``stage`` committed.

    Raises:
        InspectError: the stage has no commit yet; the message lists the committed stages.
    """
    body = store.read_json(cp.commit_key(stage.prefix)) if stage.status in COMMITTED else None
    if body is None:
        done = [s.name for s in run.stages if s.status in COMMITTED]
        raise InspectError(f"stage {stage.name} of run {run.run_id} is not committed yet "
                           f"(status {stage.status or '?'}); committed: {', '.join(done) or 'none'}")
    result = cp.WaveResult.from_json(body)
    return StageFiles(stage, tuple(f.key for f in result.files), tuple(f.key for f in result.rejected))


def committed_files(store: Store, run: RunRecord, last: RunStage) -> list[StageFiles]:
    """Every stage of ``run`` up to ``last`` that has a commit, in order."""
    found = []
    for stage in run.stages[:last.index + 1]:
        try:
            found.append(stage_files(store, run, stage))
        except InspectError:
            log.info("%s of run %s is not committed; its rows are not read", stage.name, run.run_id)
    return found


def columns_of(store: Store, keys: Iterable[str]) -> list[str]:
    """The logical columns of a stage's files (its first file's: a stage writes one schema)."""
    first = next(iter(keys), None)
    return [] if first is None else logical_columns(store, first)


def check_columns(asked: Iterable[str], available: list[str], what: str) -> None:
    """Raise :class:`InspectError` naming ``available`` unless every column ``asked`` is there."""
    missing = [c for c in asked if c not in available]
    if missing:
        raise InspectError(f"no column {', '.join(missing)} in {what}; its columns: {', '.join(available)}")


def compile_where(text: str) -> CompiledExpression:
    """``--where`` compiled once by the ``filter`` operator's expression language.

    Raises:
        InspectError: with the expression module's message.
    """
    try:
        return parse_expression(text)
    except ExpressionError as err:
        raise InspectError(f"--where: {err}") from None


def stream_rows(store: Store, keys: Iterable[str], columns: list[str] | None = None,
                where: CompiledExpression | None = None) -> Iterator[pa.Table]:
    """The rows of ``keys`` (document or rejected files) where ``where`` holds, with
    ``columns`` only (all when None), batch by batch; batches with no rows left are skipped.

    Only ``columns`` and the columns ``where`` names are read from the files.

    Raises:
        InspectError: ``where`` does not fit the columns' types.
    """
    wanted = None if columns is None else list(dict.fromkeys([*columns, *(where.columns if where else ())]))
    for key in keys:
        for batch in iter_file_batches(store, key, BATCH_ROWS, wanted):
            if where is not None:
                try:
                    batch = batch.filter(where.evaluate(batch))
                except ExpressionError as err:
                    raise InspectError(f"--where: {err}") from None
            if columns is not None:
                batch = batch.select(columns)
            if batch.num_rows:
                yield batch


def rows_with(store: Store, keys: Iterable[str], column: str, values: Iterable[Any], columns: list[str],
              first_only: bool = True) -> pa.Table:
    """The rows of ``keys`` whose ``column`` is one of ``values``, with ``columns``.

    With ``first_only``, reading stops once every value was found once (ids are unique
    in a stage unless the run allows repeated ids).
    """
    value_set = pa.array(sorted(set(values)))
    wanted = list(dict.fromkeys([column, *columns]))
    found: list[pa.Table] = []
    seen: set[Any] = set()
    for batch in stream_rows(store, keys, wanted):
        hits = batch.filter(pc.is_in(batch[column], value_set=value_set.cast(batch[column].type)))
        if hits.num_rows:
            found.append(hits.select(columns))
            seen.update(hits[column].to_pylist())
            if first_only and len(seen) == len(value_set):
                break
    return pa.concat_tables(found) if found else pa.table({})
