"""Incremental input: which input files earlier runs consumed, so a nightly run reads only
what is new or changed (``input.incremental: {state: NAME}``).

The record is cross-run state (jobs/state.py) under ``inputs/<name>/``: each successful run
appends one segment naming every file it read (URI, size, and the version marker of
:class:`jobs.store.InputFile`: modification time locally; size and LastModified on S3),
compacted into one file past ``compact_segments``. A run pins the newest version it did not
make, so a failed night, rerun, sees the same record and reads the same files; the record
advances only after the run's output is written and its indexes advanced, just before the
run is marked succeeded.

A file whose URI is in the record with the same size and version is skipped; one with
another size or version is *changed* and read again whole (the record then holds its new
version): its documents that an earlier night kept are found by the history indexes
(``exact_dedup`` and ``minhash_dedup`` with ``index.name``) and removed, so only what changed
comes through. A rewrite that keeps the bytes but not the modification time counts as
changed (no content digest is taken: it would mean reading every file twice).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from jobs.parts import iter_file_batches
from jobs.state import PinnedState, StateVersions
from jobs.store import InputFile, Store
from operators.base import CrossRunState

FILES_SCHEMA = pa.schema([("uri", pa.string()), ("size", pa.int64()), ("version", pa.string()),
                          ("run_id", pa.string())])


@dataclass
class InputSplit:
    """The matched input files by what the record says of them."""

    new: list[InputFile] = field(default_factory=list)
    changed: list[InputFile] = field(default_factory=list)
    unchanged: list[InputFile] = field(default_factory=list)

    @property
    def to_read(self) -> list[InputFile]:
        """New and changed files, in URI order."""
        return sorted(self.new + self.changed, key=lambda f: f.uri)

    def describe(self) -> dict[str, int]:
        return {"new": len(self.new), "changed": len(self.changed), "unchanged": len(self.unchanged)}


class InputHistory:
    """The record of consumed input files kept under ``inputs/<name>/``."""

    def __init__(self, store: Store, name: str, compact_segments: int = 16) -> None:
        self.name = name
        self.versions = StateVersions(store, CrossRunState(
            "inputs", "input state", name, {"record": "input files v1"}, tuple(FILES_SCHEMA.names),
            compact_segments=compact_segments))
        self.store = store

    def pin(self, run_id: str) -> PinnedState:
        """The newest version ``run_id`` did not make (a rerun of a night sees what it saw)."""
        return self.versions.pin(run_id)

    def consumed(self, pin: PinnedState, batch_rows: int = 65536) -> dict[str, tuple[int, str]]:
        """URI -> (size, version) of every file the pinned version records (the latest read wins)."""
        seen: dict[str, tuple[int, str]] = {}
        for key in pin.files:
            if not self.store.exists(key):  # only a rerun of an old run with a new config gets here
                raise FileNotFoundError(
                    f"input state {self.name!r}: version {pin.version} is gone ({key} was deleted by `tamis gc`, "
                    f"no unfinished run pinned it); a run that read it cannot be redone with another config: "
                    f"use a new run id")
            for batch in iter_file_batches(self.store, key, batch_rows):
                for uri, size, version in zip(batch["uri"].to_pylist(), batch["size"].to_pylist(),
                                              batch["version"].to_pylist()):
                    seen[uri] = (size, version)
        return seen

    def split(self, files: list[InputFile], pin: PinnedState) -> InputSplit:
        """Sort ``files`` into new, changed and unchanged against the pinned record."""
        seen = self.consumed(pin)
        split = InputSplit()
        for f in files:
            before = seen.get(f.uri)
            if before is None:
                split.new.append(f)
            elif before != (f.size, f.version):
                split.changed.append(f)
            else:
                split.unchanged.append(f)
        return split

    def advance(self, run_id: str, pin: PinnedState, output_fp: str, read: list[InputFile]) -> dict[str, Any]:
        """Record ``read`` as consumed in version ``pin + 1`` (idempotent for the same run)."""

        def rows(previous: pa.Table | None) -> Iterator[pa.Table]:
            yield pa.table({"uri": [f.uri for f in read], "size": [f.size for f in read],
                            "version": [f.version for f in read], "run_id": [run_id] * len(read)},
                           schema=FILES_SCHEMA)

        return self.versions.advance_rows(run_id, pin, output_fp, rows, 65536, lambda: len(read))
