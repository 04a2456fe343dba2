"""State kept across runs in the store: versions, pinning, and advancing with a run's output.

An operator declares the state it reads with ``cross_run_state(config)`` (a
:class:`operators.base.CrossRunState`, e.g. ``minhash_dedup``'s index of documents earlier
runs kept) and how a run's output folds into it with ``fold_state``. This module drives it
without knowing what it holds::

    <family>/<name>/v-00003.json                          version 3 (created, never rewritten)
    <family>/<name>/runs/<run>.json                       the version a run made, and its parent
    <family>/<name>/segments/<run>-<output fp>/part-00000.parquet   append form: one run's rows
    <family>/<name>/tables/v-00003-<output fp>.parquet    replace form: the whole state at version 3;
                                                          append form past compact_segments: all rows

A version names its parent, its run, that run's output fingerprint and every file a reader
needs. A run pins the newest version (or, rerun after it made one, that one's parent) and,
after its output is written, creates ``pinned + 1`` with the store's conditional put; if
another run got there first the run fails with :class:`StateConflictError` and a rerun uses
the newer version.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from jobs import checkpoint as cp
from jobs.parts import iter_file_batches, parquet_writer, read_files
from jobs.store import Store
from operators.base import CrossRunState, Operator, OperatorConfig

VERSION = re.compile(r"v-(\d{5,})\.json$")
FAMILIES = ("indexes", "exact_indexes", "inputs")
"""The store folders of every kind of cross-run state (operators' ``CrossRunState.family``
and jobs/input_history.py's), which `tamis gc` looks through."""


def version_numbers(store: Store, prefix: str) -> list[int]:
    """The numbers of the versions (``v-NNNNN.json`` directly under ``prefix``) of a state."""
    depth = prefix.count("/") + 1
    return [int(m.group(1)) for k in store.list(prefix) if (m := VERSION.search(k)) and k.count("/") == depth]


class StateConflictError(RuntimeError):
    """Another run advanced the state since this run pinned it."""


@dataclass(frozen=True)
class PinnedState:
    """The version of a state a run reads (version 0: empty)."""

    version: int
    files: list[str]
    documents: int


class StateVersions:
    """The versions of one declared state in a store."""

    def __init__(self, store: Store, state: CrossRunState) -> None:
        self.store, self.state = store, state
        self.prefix = f"{state.family}/{state.name}"
        self.compat = cp.fingerprint(state.compat)

    def version(self, number: int) -> dict[str, Any] | None:
        return self.store.read_json(f"{self.prefix}/v-{number:05d}.json") if number else None

    def current(self) -> dict[str, Any] | None:
        numbers = version_numbers(self.store, self.prefix)
        return self.version(max(numbers)) if numbers else None

    def pin(self, run_id: str) -> PinnedState:
        """The version a run reads: the parent of the one it made, if it made one (a rerun of
        a run that succeeded sees what it saw, however many runs came after), else the
        newest."""
        made = self.store.read_json(self._made_by(run_id))
        version = self.version(made["parent"]) if made else self.current()
        while version is not None and version["run_id"] == run_id:  # made, its marker not yet written
            version = self.version(version["parent"])
        if version is None:
            return PinnedState(0, [], 0)
        if version["compat"] != self.compat:
            raise ValueError(f"{self.state.label} {self.state.name!r} was built with other settings (one of "
                             f"{', '.join(sorted(self.state.compat))}); use the same settings or another name")
        return PinnedState(version["version"], list(version["files"]), int(version["documents"]))

    def advance(self, run_id: str, pinned: PinnedState, output_fp: str, doc_files: list[str], batch_rows: int,
                operator: type[Operator[Any]], config: OperatorConfig) -> dict[str, Any]:
        """Fold the documents of ``doc_files`` into version ``pinned + 1``; idempotent."""
        added = 0

        def documents() -> Iterator[pa.Table]:
            nonlocal added
            for key in doc_files:
                for batch in iter_file_batches(self.store, key, batch_rows, list(self.state.columns)):
                    added += batch.num_rows
                    yield batch

        return self.advance_rows(run_id, pinned, output_fp, lambda previous: operator.fold_state(
            config, previous, documents()), batch_rows, lambda: added)

    def advance_rows(self, run_id: str, pinned: PinnedState, output_fp: str,
                     fold: Callable[[pa.Table | None], Iterator[pa.Table]], batch_rows: int,
                     added: Callable[[], int]) -> dict[str, Any]:
        """Version ``pinned + 1`` from ``fold(previous)``: the rows to append (``previous``
        None) or, in replace form, the whole state from the previous one; ``added()`` counts
        what was folded once the rows are written. Idempotent for the same run and output."""
        made = self.version(pinned.version + 1)
        if made is not None and made["run_id"] == run_id and made["parent"] == pinned.version \
                and made["output_fingerprint"] == output_fp:
            self.store.write_json(self._made_by(run_id), {"version": made["version"], "parent": made["parent"]})
            return made  # this run advanced it already (a rerun after the commit)
        current = self.current()
        if current is not None and current["version"] != pinned.version and not (
                current["run_id"] == run_id and current["parent"] == pinned.version):
            raise StateConflictError(
                f"{self.state.label} {self.state.name!r} moved from version {pinned.version} to "
                f"{current['version']} (run {current['run_id']!r}) while this run used it; rerun to use the "
                f"newer version (stages before the one that reads it are reused)")
        number = (current["version"] if current else 0) + 1
        if self.state.replace:
            key = f"{self.prefix}/tables/v-{number:05d}-{output_fp[:8]}.parquet"
            self._write(key, fold(read_files(self.store, pinned.files) if pinned.files else None))
            files = [key]
        elif self.state.compact_segments and len(pinned.files) + 1 > self.state.compact_segments:
            # one file for every segment and this run's rows: a reader opens one file, not hundreds
            key = f"{self.prefix}/tables/v-{number:05d}-{output_fp[:8]}.parquet"
            self._write(key, self._compacted(pinned.files, fold(None), batch_rows))
            files = [key]
        else:
            key = f"{self.prefix}/segments/{run_id}-{output_fp[:8]}/part-00000.parquet"
            self._write(key, fold(None))
            files = [*pinned.files, key]
        body = {"version": number, "parent": pinned.version, "run_id": run_id, "output_fingerprint": output_fp,
                "compat": self.compat, "files": files, "added": added(), "documents": pinned.documents + added(),
                "created_at": time.time()}
        if not self.store.create_json(f"{self.prefix}/v-{number:05d}.json", body):
            raise StateConflictError(f"{self.state.label} {self.state.name!r}: another run created version "
                                     f"{number} at the same time; rerun to use it")
        self.store.write_json(self._made_by(run_id), {"version": number, "parent": pinned.version})
        return body

    def _made_by(self, run_id: str) -> str:
        """The marker naming the version ``run_id`` made (written after the version itself)."""
        return f"{self.prefix}/runs/{run_id}.json"

    def _compacted(self, files: list[str], added: Iterator[pa.Table], batch_rows: int) -> Iterator[pa.Table]:
        """The rows of ``files`` (earlier segments), then ``added``, in that order (a reader
        may let later rows win), under ``added``'s schema."""
        first = next(added)
        yield first.schema.empty_table()
        for key in files:
            yield from iter_file_batches(self.store, key, batch_rows)
        yield first
        yield from added

    def _write(self, key: str, tables: Iterator[pa.Table]) -> None:
        """Write the tables (the first one fixes the schema; it may be empty) as one file."""
        first = next(tables)
        with self.store.open_output(key) as sink:
            with parquet_writer(sink, first.schema) as writer:
                if first.num_rows:
                    writer.write_table(first)
                for table in tables:
                    writer.write_table(table.cast(first.schema))
