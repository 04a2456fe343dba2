"""`tamis show | diff | explain`: read-only looks inside a run in the store.

``show`` prints a stage's logical rows (or its rejected rows), filtered with the ``filter``
operator's expression language; ``diff`` tells which documents two runs kept differently and
why; ``explain`` follows one document through a run. They read committed stage files only,
through :class:`jobs.store.Store` (a local store or S3), and never write to the store.

(Not ``jobs/inspect.py``: run as a script from jobs/, that name would shadow the standard
library's ``inspect`` for every module.)
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator

import pyarrow as pa

from jobs import doc_trace, kept_diff, row_output
from jobs.spec import DEFAULT_STORE
from jobs.pipeline_load import load_pipeline
from jobs.stage_rows import (InspectError, check_columns, columns_of, compile_where, load_run, stage_files,
                             stream_rows)
from jobs.store import Store
from operators.base import DROP_REASON

Command = Callable[[argparse.Namespace], int]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``show``, ``diff`` and ``explain`` on the ``tamis`` command's subparsers."""
    show = sub.add_parser("show", help="print a stage's rows (or rejected rows) from a run in the store")
    show.add_argument("run_id")
    show.add_argument("stage", help="a stage as `tamis status` names it (read, exact_dedup.keep, filter), "
                      "or a composite's name for its last part")
    show.add_argument("--columns", metavar="A,B", help="only these columns (default: all)")
    show.add_argument("--where", metavar="EXPR", help="only rows where EXPR holds, in the filter operator's "
                      "language, e.g. \"quality_word_count < 50 and source == 'git-doc'\"")
    show.add_argument("--limit", type=int, default=20, help="stop after this many rows; 0: all (default 20)")
    show.add_argument("--format", choices=("table", "jsonl", "parquet"), default="table")
    show.add_argument("--out", metavar="FILE", help="where --format parquet writes (a path or s3:// URI)")
    show.add_argument("--rejected", action="store_true", help="the rows the stage removed, with drop_reason")
    _store_arguments(show)

    diff = sub.add_parser("diff", help="documents two runs kept differently, counted by drop reason")
    diff.add_argument("run_a")
    diff.add_argument("run_b")
    diff.add_argument("--stage", help="compare what each run kept after this stage (default: its last stage)")
    diff.add_argument("--examples", type=int, default=3, help="example ids per drop reason (default 3)")
    _store_arguments(diff)

    explain = sub.add_parser("explain", help="one document's path through a run, stage by stage")
    explain.add_argument("run_id")
    explain.add_argument("id", help="the document's id")
    _store_arguments(explain)


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"store URI (default {DEFAULT_STORE})")
    parser.add_argument("--config", help="take the store (and its options) from this config")


def _open_store(args: argparse.Namespace) -> Store:
    """The store ``--config`` names (with its options), else ``--store``, as `tamis status` opens it."""
    return load_pipeline(args.config, check_io=False).spec.make_store() if args.config else Store(args.store)


def _one_line_errors(command: Command) -> Command:
    """Bad input becomes one ``error:`` line naming what exists, and exit status 2."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except InspectError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return run


@_one_line_errors
def run_show(args: argparse.Namespace) -> int:
    """`tamis show`: a stage's logical rows or its rejected rows, filtered, as text, JSON lines or Parquet."""
    if args.limit < 0:
        raise InspectError(f"--limit {args.limit}: give a number of rows, or 0 for all")
    if (args.format == "parquet") != bool(args.out):
        raise InspectError("--format parquet writes to --out FILE; --out goes with --format parquet only")
    store = _open_store(args)
    run = load_run(store, args.run_id)
    files = stage_files(store, run, run.stage(args.stage))
    keys = files.rejected if args.rejected else files.files
    what = f"{'rejected ' if args.rejected else ''}rows of stage {files.stage.name} of run {run.run_id}"
    where = compile_where(args.where) if args.where else None
    available = columns_of(store, keys)
    columns = _shown_columns(args, available)
    if keys:  # a stage with no rows has no columns to check against
        check_columns(columns or [], available, f"the {what}")
        check_columns(where.columns if where else [], available, f"the {what}")
    batches = _first_rows(stream_rows(store, keys, columns, where), args.limit)
    if args.format == "jsonl":
        for batch in batches:
            for line in row_output.jsonl_lines(batch):
                print(line)
        return 0
    if args.format == "parquet":
        rows = row_output.write_parquet(batches, args.out, store.options)  # an s3:// --out: the store's options
        print(f"wrote {rows:,} {what} to {args.out}" if rows else f"no {what}: nothing written")
        return 0
    tables = list(batches)
    shown = pa.concat_tables(tables, promote_options="default") if tables else pa.table({})
    if not shown.num_rows:
        print(f"no {what}" + (f" where {where.text}" if where else ""))
        return 0
    more = " (--limit reached; there may be more)" if shown.num_rows == args.limit else ""
    print(f"{row_output.render_table(shown)}\n\n{shown.num_rows:,} {what}{more}")
    return 0


def _shown_columns(args: argparse.Namespace, available: list[str]) -> list[str] | None:
    """The columns to print: ``--columns``, else all (None); rejected rows lead with their reason."""
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    if not args.rejected or DROP_REASON not in available:
        return columns
    rest = columns if columns is not None else available
    return [DROP_REASON, *(c for c in rest if c != DROP_REASON)]


def _first_rows(batches: Iterator[pa.Table], limit: int) -> Iterator[pa.Table]:
    """The batches up to ``limit`` rows in all (0: no limit); the stream is not read further."""
    if not limit:
        yield from batches
        return
    left = limit
    for batch in batches:
        yield batch.slice(0, left)
        left -= min(left, batch.num_rows)
        if not left:
            return


@_one_line_errors
def run_diff(args: argparse.Namespace) -> int:
    """`tamis diff`: documents kept by one run and not the other, by the other's drop reason."""
    if args.examples < 0:
        raise InspectError(f"--examples {args.examples}: give a number of examples, 0 or more")
    store = _open_store(args)
    sides = []
    for run_id in (args.run_a, args.run_b):
        run = load_run(store, run_id)
        if not run.stages:
            raise InspectError(f"run {run_id} has no stages yet")
        stage = run.stage(args.stage) if args.stage else run.stages[-1]
        sides.append(kept_diff.load_side(store, run, stage))
    print(kept_diff.render_diff(store, sides[0], sides[1], args.examples))
    return 0


@_one_line_errors
def run_explain(args: argparse.Namespace) -> int:
    """`tamis explain`: one document through every stage of a run."""
    store = _open_store(args)
    print(doc_trace.render_trace(doc_trace.trace(store, load_run(store, args.run_id), args.id)))
    return 0

