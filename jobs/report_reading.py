"""How the run report reads a run: its committed stages, columns sampled within a row budget,
logical sizes and text previews.

The report is made after every successful `tamis run`, so it must stay cheap on any store:
every read goes through :class:`jobs.store.Store` (a local directory or S3), names only the
columns it needs (Parquet never decodes the others, the text least of all), and stops at a
row budget. Files are visited in a fixed shuffled order, a share of each, because the first
files of a stage usually hold one input file and so one source. A sample remembers how many
rows it stands for, so counts drawn from it can be scaled back up and marked as estimates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs import checkpoint as cp
from jobs.checkpoint import FileRef, WaveResult
from jobs.part_reader import BASE_KEY, iter_file_batches, logical_schema
from jobs.stage_rows import COMMITTED, RunRecord, RunStage
from jobs.store import Store

PREVIEW_CHARS = 300
"""Characters of a document's text the report shows."""
MIN_ROWS_PER_FILE = 1024
"""The smallest share of a file a sample reads: below it, per-file overhead dominates."""
T = TypeVar("T")


@dataclass(frozen=True)
class CommittedStage:
    """A stage of the run with a commit: what it wrote and the columns its documents have."""

    stage: RunStage
    result: WaveResult
    chain: tuple[str, ...]  # the stages that ran with it in one job (their time is shared)
    schema: pa.Schema | None  # logical schema of its document files; None when it wrote none

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def op(self) -> str:
        return self.stage.op

    def has(self, column: str) -> bool:
        """Whether the stage's documents have ``column``."""
        return self.schema is not None and column in self.schema.names


def committed_stages(store: Store, run: RunRecord) -> list[CommittedStage]:
    """The run's stages that have a commit, in order (a failed or stopped run has fewer)."""
    found = []
    for stage in run.stages:
        body = store.read_json(cp.commit_key(stage.prefix)) if stage.status in COMMITTED else None
        if body is None:
            continue
        result = WaveResult.from_json(body)
        schema = logical_schema(store, result.files[0].key) if result.files else None
        found.append(CommittedStage(stage, result, tuple(body.get("chain") or ()), schema))
    return found


def spread(items: Sequence[T]) -> list[T]:
    """``items`` in a fixed shuffled order, so that a prefix of it covers the whole list."""
    order = list(items)
    random.Random(len(order)).shuffle(order)
    return order


@dataclass(frozen=True)
class ColumnSample:
    """Rows read from a stage's files: per file, and how many rows the files hold in all."""

    tables: tuple[tuple[str, pa.Table], ...]  # (file key, the rows read from it), in read order
    rows_total: int

    @property
    def rows_read(self) -> int:
        return sum(t.num_rows for _, t in self.tables)

    @property
    def sampled(self) -> bool:
        """Whether the rows read are fewer than the files hold (counts are then estimates)."""
        return self.rows_read < self.rows_total

    @property
    def scale(self) -> float:
        """How many rows of the files each row read stands for."""
        return self.rows_total / self.rows_read if self.rows_read else 0.0

    def table(self) -> pa.Table | None:
        """Every row read, in one table (None when none was)."""
        tables = [t for _, t in self.tables if t.num_rows]
        return pa.concat_tables(tables) if tables else None


def sample_columns(store: Store, files: Sequence[FileRef], columns: list[str], budget: int,
                   whole_files: bool = False) -> ColumnSample:
    """``columns`` of about ``budget`` rows of ``files``, visited in :func:`spread` order.

    Without ``whole_files`` each file gives at most an even share of the budget (and at least
    :data:`MIN_ROWS_PER_FILE`), so the sample spans the files; with it, files are read whole
    until the budget is reached (what a group stage's files need: a group lies in one file).
    """
    total = sum(f.rows for f in files)
    share = None if whole_files else max(MIN_ROWS_PER_FILE, math.ceil(budget / max(len(files), 1)))
    tables: list[tuple[str, pa.Table]] = []
    read = 0
    for ref in spread([f for f in files if f.rows]):
        if read >= budget:
            break
        cap = ref.rows if share is None else min(share, ref.rows)
        batches = []
        got = 0
        for batch in iter_file_batches(store, ref.key, min(cap, 8192), columns):
            batches.append(batch.slice(0, cap - got))
            got += batches[-1].num_rows
            if got >= cap:
                break
        if batches:
            tables.append((ref.key, pa.concat_tables(batches)))
            read += got
    return ColumnSample(tuple(tables), total)


def count_by(table: pa.Table | None, columns: list[str]) -> dict[tuple[object, ...], int]:
    """Rows of ``table`` per distinct combination of ``columns`` (nulls a value of their own),
    counted by Arrow, not by a Python loop over a million rows."""
    if table is None or not table.num_rows:
        return {}
    counts = table.select(columns).group_by(columns, use_threads=False).aggregate([([], "count_all")])
    keys = zip(*(counts[c].to_pylist() for c in columns))
    return dict(zip(keys, counts["count_all"].to_pylist()))


def matching_rows(store: Store, keys: Iterable[str], column: str, values: Iterable[object],
                  columns: list[str]) -> Iterator[pa.Table]:
    """The rows of ``keys`` whose ``column`` is one of ``values``, batch by batch, with
    ``columns`` (``text`` cut to a preview, so a long document never becomes a Python string)."""
    value_set = pa.array(sorted(set(values)))
    wanted = list(dict.fromkeys([column, *columns]))
    for key in keys:
        for batch in iter_file_batches(store, key, 4096, wanted):
            hits = batch.filter(pc.is_in(batch[column], value_set=value_set.cast(batch[column].type)))
            if hits.num_rows:
                if "text" in hits.column_names:
                    hits = hits.set_column(hits.column_names.index("text"), "text", previews(hits["text"]))
                yield hits


def previews(text: pa.ChunkedArray | pa.Array, limit: int = PREVIEW_CHARS) -> pa.Array:
    """The first ``limit`` characters of each text, with ``…`` where it was cut; null stays null."""
    cut = pc.utf8_slice_codeunits(text, 0, limit)
    longer = pc.greater(pc.utf8_length(text), limit)
    return pc.if_else(longer, pc.binary_join_element_wise(cut, pa.scalar("…"), ""), cut)


def raw_preview(raw: bytes | None, limit: int = PREVIEW_CHARS) -> str:
    """A rejected input line's bytes as text (bad UTF-8 replaced), cut like :func:`previews`."""
    if raw is None:
        return ""
    text = raw[:limit * 4].decode("utf-8", "replace").rstrip("\n")
    return text[:limit] + "…" if len(text) > limit or len(raw) > limit * 4 else text


class LogicalSizes:
    """Bytes and rows of document files, a linked file's share of its bases included (as
    jobs/part_reader.py ``logical_size`` counts them), each footer read once per report."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[str, tuple[int, int]] = {}

    def of(self, key: str) -> tuple[int, int]:
        """(bytes, rows) of the file at ``key``."""
        if key not in self._known:
            with self.store.fs.open_input_file(self.store.fs_path(key)) as f:
                size = f.size()
                parquet = pq.ParquetFile(f)
                meta = parquet.schema_arrow.metadata or {}
                rows = parquet.metadata.num_rows
            if BASE_KEY in meta:
                base_bytes, base_rows = self.of(meta[BASE_KEY].decode())
                size += base_bytes * rows // base_rows if base_rows else 0
            self._known[key] = (size, rows)
        return self._known[key]

    def total(self, files: Sequence[FileRef], most: int = 32) -> tuple[int, bool]:
        """Logical bytes of ``files`` and whether that is an estimate: past ``most`` files,
        bytes per row measured on ``most`` of them times the rows of all."""
        if len(files) <= most:
            return sum(self.of(f.key)[0] for f in files), False
        chosen = spread(files)[:most]
        sizes = [self.of(f.key) for f in chosen]
        per_row = sum(b for b, _ in sizes) / max(sum(r for _, r in sizes), 1)
        return round(per_row * sum(f.rows for f in files)), True
