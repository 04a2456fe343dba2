"""Map stages applied to whole files, batch by batch through every stage of a fused chain.

A run of consecutive map stages that Ray Data would fuse into one task (jobs/execute.py
decides) is one :class:`FileChain`: for each upstream file, every batch visits every stage
before the next batch is read. Each stage still writes its own checkpoint files, exactly
as if it had read its input back from the stage before (column files, row files or whole
documents, jobs/parts.py), but the batch it is handed is the previous stage's output held
in memory. So a file is read and decoded once per chain rather than once per stage, and
per-batch work that stages share through an identity cache (the quality families' lines
and words, ``operators.quality.text_stats``) is computed once: the text column a stage
passes through is the very array the next stage gets.

Batches are those of the head's input file; rows a stage drops are gone from what the
next one gets, as they are from the row file it would otherwise read (whose batches follow
its base's, jobs/part_reader.py), so each stage sees the same batches either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.checkpoint import Artifact
from jobs.part_reader import COLUMNS_KEY
from jobs.parts import (INTERNAL_COLUMNS, FileOutput, PartWriter, basename, column_part,
                        iter_file_batches, logical_columns, metrics_row, read_files, row_part, taken_part)
from jobs.spec import ResourcesSpec
from jobs.store import Store
from jobs.wave_stream import done_row, item_table
from operators.base import DROP_REASON, TAKE_COLUMN, Operator

STAGE_NOTE = "tamis stage: "
"""Added to an exception's notes (and so to its traceback) by the stage that raised it: in a
chain, the scheduler reads it to tell which stage failed."""


def noted(err: BaseException, stage: str) -> BaseException:
    """``err`` with a note naming the stage that raised it (the first stage to note it wins)."""
    if not any(n.startswith(STAGE_NOTE) for n in getattr(err, "__notes__", [])):
        err.add_note(f"{STAGE_NOTE}{stage}")
    return err


@dataclass(frozen=True)
class MapStep:
    """One map stage of a chain: its operator, where it writes, and what it is given.

    ``outs`` holds where it writes for each wave of the job, in the job's wave order (one
    Ray Data job can run several waves: jobs/execute.py); an item's ``wave`` indexes it.
    """

    name: str
    operator: type[Operator[Any]]
    config: Any
    outs: tuple[FileOutput, ...]
    resources: ResourcesSpec
    artifact: Artifact | None = None
    column_files: bool = True


class StageMapper:
    """One map stage inside a task or actor: its operator and how its output is stored.

    An artifact split per file is sliced here: the operator is built for each file with
    only that file's rows of the artifact; otherwise one operator serves every file.
    """

    def __init__(self, step: MapStep, store: Store) -> None:
        operator, config, artifact = step.operator, step.config, step.artifact
        self.operator, self.config, self.store, self.outs = operator, config, store, step.outs
        self.name = step.name or operator.name
        # a row-keeping operator's files hold only what it writes (see parts.column_part)
        keeps_rows = step.column_files and getattr(operator, "keeps_rows", False)
        # ... or, when it copies rows (mix.sample), the input row of each copy (parts.taken_part)
        self.repeats = step.column_files and getattr(operator, "repeats_rows", False)
        self.written = tuple(operator.columns_written(config)) if keeps_rows or self.repeats else ()
        # ... or, when it marks rows dropped, the numbers of the rows it keeps (parts.row_part)
        self.drops = DROP_REASON in self.written and not self.repeats
        # ... and needs only the columns it reads: the others stay in the files they are in
        # (all of them for an operator that reads none: a batch of no columns has no rows;
        # all of them when it drops rows, which rejected/ keeps whole)
        self.reading = list(operator.columns_read(config)) or None if keeps_rows and not self.drops else None
        # a copying operator is given only what it reads; its stage reads everything (rejected/)
        self.given = list(operator.columns_read(config)) or None if self.repeats else None
        self.feeds = True  # whether a later stage of the chain reads what it maps (FileChain clears it)
        self.slices: dict[str, list[str]] | None = None  # document file name -> its artifact slices
        if artifact and artifact.by_file:
            self.slices = {}
            for k in artifact.files:
                self.slices.setdefault(basename(k), []).append(k)
        whole = read_files(store, artifact.files) if artifact and not artifact.by_file else None
        self.op = None if self.slices is not None else operator(config, artifact=whole)
        self._reported: dict[str, float] = {}

    def for_file(self, name: str) -> Operator[Any]:
        """The operator for the document file ``name`` (its own when the artifact is sliced)."""
        if self.op is not None:
            return self.op
        parts = self.slices.get(name) if self.slices is not None else None
        return self.operator(self.config, artifact=read_files(self.store, parts) if parts else None)

    def file_metrics(self, op: Operator[Any], wave: int) -> list[dict[str, Any]]:
        """A per-file operator's counters (none for the shared one: see :meth:`new_metrics`)."""
        return [] if op is self.op else metrics_row(op.metrics(), self.outs[wave].prefix)

    def new_metrics(self, wave: int) -> list[dict[str, Any]]:
        """The shared operator's counters added since the last call (it lives on in an actor
        across files and waves), counted to ``wave``, the wave of the file just mapped."""
        if self.op is None:
            return []
        now = self.op.metrics()
        delta = {k: v - self._reported.get(k, 0) for k, v in now.items() if v != self._reported.get(k, 0)}
        self._reported = dict(now)
        return metrics_row(delta, self.outs[wave].prefix)


class _OpenStage:
    """One stage's state while it maps one file: the file it reads (logically), its
    operator, its writer, and how many of that file's rows it has seen."""

    def __init__(self, stage: StageMapper, name: str, base: str, columns: list[str], wave: int) -> None:
        self.stage, self.name, self.base, self.columns, self.wave = stage, name, base, columns, wave
        self.op = stage.for_file(name)
        self.out = stage.outs[wave]
        self.writer: PartWriter = self.out.writer()
        self.first_row = 0
        self.output_columns: list[str] | None = None  # the logical columns of what it writes

    def map(self, batch: pa.Table) -> pa.Table:
        """Map one batch of the logical input file, write what the stage stores, and return
        the batch as the next stage would read it back from those files."""
        stage = self.stage
        if stage.repeats:
            return self._map_copies(batch)
        given = batch.select(stage.reading) if stage.reading is not None else batch
        result = self.op(given)
        if stage.drops:
            kept, rejected = row_part(given, result, stage.written, self.base, self.first_row)
            self.writer.append("rejected", self.name, rejected)
            self.writer.append("kept", self.name, kept)
            order = json.loads(kept.schema.metadata[COLUMNS_KEY])
            dropped = pc.fill_null(pc.is_valid(result[DROP_REASON]), False)
            out = _merged(batch, result, order).filter(pc.invert(dropped))
        elif stage.written:
            # the input's column order matters only where the batch holds some of its columns
            part = column_part(given, result, stage.written, self.base,
                               self.columns if stage.reading is not None else None)
            self.writer.write(self.name, part)
            order = json.loads(part.schema.metadata[COLUMNS_KEY])
            out = _merged(batch, result, order)
        else:  # whole documents: what PartWriter.write keeps of them
            if TAKE_COLUMN in result.column_names:  # a copying operator's, stored as whole documents here
                result = result.drop_columns([TAKE_COLUMN])
            self.writer.write(self.name, result)
            out = result
            if DROP_REASON in out.column_names:
                out = out.filter(pc.invert(pc.fill_null(pc.is_valid(out[DROP_REASON]), False)))
            out = out.drop_columns([c for c in INTERNAL_COLUMNS if c in out.column_names])
            order = out.column_names
        self.first_row += batch.num_rows
        self.output_columns = order
        return out

    def _map_copies(self, batch: pa.Table) -> pa.Table:
        """``map`` for an operator that ``repeats_rows``: kept copies stored as row numbers."""
        stage = self.stage
        result = self.op(batch.select(stage.given) if stage.given is not None else batch)
        kept, rejected, rows = taken_part(batch, result, stage.written, self.base, self.first_row)
        self.writer.append("rejected", self.name, rejected)
        self.writer.append("kept", self.name, kept)
        order = json.loads(kept.schema.metadata[COLUMNS_KEY])
        self.first_row += batch.num_rows
        self.output_columns = order
        # the copies' texts are taken only for a later stage of the chain that reads them
        return _merged(batch.take(pa.array(rows)), kept, order) if stage.feeds else kept

    def close(self) -> list[dict[str, Any]]:
        """Close the stage's files: their stats rows, and a per-file operator's counters."""
        return self.writer.close() + self.stage.file_metrics(self.op, self.wave)


def _merged(batch: pa.Table, result: pa.Table, order: list[str]) -> pa.Table:
    """The logical output file's columns in ``order``: the result's, else the input's (the
    ones neither holds were not read: no later stage of the chain asks for them)."""
    names = [c for c in order if c in result.column_names or c in batch.column_names]
    return pa.Table.from_arrays([result[c] if c in result.column_names else batch[c] for c in names], names=names)


class FileChain:
    """Applies a chain of map stages to whole upstream files, batch by batch (module doc).

    Without ``follows`` each call gets file keys and their waves (``key``, ``wave`` rows);
    with it, the stats rows of the stage before, whose kept files under ``follows[w]`` (the
    stage before's prefix in wave ``w``) it maps, passing those rows on ahead of its own. As
    an actor it keeps its operators loaded across calls, and so across the waves of a job.
    """

    def __init__(self, steps: list[MapStep], store: Store, batch_rows: int,
                 follows: tuple[str, ...] | None = None) -> None:
        self.stages = [StageMapper(step, store) for step in steps]
        self.stages[-1].feeds = False
        self.store, self.batch_rows, self.follows = store, batch_rows, follows
        # what the head reads of its input file: whatever each stage reads that no stage
        # before it writes (everything, when a stage reads everything)
        self.reading: list[str] | None = []
        made: set[str] = set()
        for stage in self.stages:
            if stage.reading is None or not stage.written:
                self.reading = None
                break
            self.reading += [c for c in stage.reading if c not in made and c not in self.reading]
            made.update(stage.written)

    def __call__(self, items: pa.Table) -> pa.Table:
        """One item row out per item in (jobs/wave_stream.py): a first stage's item is an
        upstream file; a later stage's, the item row of the stage before, its rows passed on
        ahead of the stats of the kept files this chain maps."""
        if self.follows is None:
            # the job's first stage closes each item with its done marker
            return item_table([self._map([(key, wave)]) + [done_row(self.stages[0].outs[wave].prefix)]
                               for key, wave in zip(items["key"].to_pylist(), items["wave"].to_pylist())])
        out: list[list[dict[str, Any]]] = []
        for rows in items["stats"].to_pylist():
            files = [(row["key"], wave) for row in rows if row["kind"] == "kept"
                     for wave, prefix in enumerate(self.follows) if row["key"].startswith(prefix + "/")]
            out.append(rows + self._map(files))
        return item_table(out)

    def _map(self, files: list[tuple[str, int]]) -> list[dict[str, Any]]:
        stats: list[dict[str, Any]] = []
        for key, wave in files:
            stats += self._map_file(key, wave)
            for stage in self.stages:
                stats += stage.new_metrics(wave)
        return stats

    def _map_file(self, key: str, wave: int) -> list[dict[str, Any]]:
        name = basename(key)
        head = self.stages[0]
        try:  # reading the input is the head's part: an error there is the head's
            # the input's column order is needed only where the head reads some of its columns
            columns = logical_columns(self.store, key) if head.reading is not None else []
            opened = [_OpenStage(head, name, key, columns, wave)]
            for batch in iter_file_batches(self.store, key, self.batch_rows, self.reading):
                for index, stage in enumerate(self.stages):
                    if index == len(opened):
                        opened.append(self._open(stage, name, opened[-1]))
                    try:
                        batch = opened[index].map(batch)
                    except Exception as err:
                        raise noted(err, stage.name)
                    if batch.num_rows == 0:
                        break
        except Exception as err:
            raise noted(err, head.name)  # a stage's own note, when there is one, stays first
        stats: list[dict[str, Any]] = []
        for open_stage in opened:
            try:
                stats += open_stage.close()
            except Exception as err:
                raise noted(err, open_stage.stage.name)
        return stats

    def _open(self, stage: StageMapper, name: str, before: _OpenStage) -> _OpenStage:
        try:
            return _OpenStage(stage, name, before.out.key("kept", name), before.output_columns or [], before.wave)
        except Exception as err:
            raise noted(err, stage.name)
