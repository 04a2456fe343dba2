"""`tamis gc [--dry-run]`: delete the stage files no run in the store can use any more.

What counts as garbage (docs/operations.md, cleanup), read from the store alone:

* a stage directory ``stages/<name>-<fingerprint>/`` that no ``runs/<id>/run.json`` lists
  (a run lists every stage it planned, committed or not, so a failed run stays resumable
  and a stage whose files a later stage reads is kept with it);
* inside a committed stage, a ``wave-*`` directory its ``_COMMIT.json`` names no file of
  (a wave of an earlier wave plan, or of a dead attempt), and a group stage's ``shuffle/``
  leftovers.

* in cross-run state (``indexes/``, ``exact_indexes/``, ``inputs/``), a segment or table no
  version names that the state's newest version or an unfinished run's pin names (what a
  compaction or a replaced version left behind).

Kept: everything under ``runs/`` (states, locks, outputs), ``latest/`` pointers, every
version's JSON, and ``models/``.
While any run holds a live lock in the store nothing is deleted: a running run may be
about to write a stage no ``run.json`` lists yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from jobs.checkpoint import run_json_key
from jobs.lock import RunLock
from jobs.state import FAMILIES, version_numbers
from jobs.stage_rows import list_runs
from jobs.store import Store


class StoreInUseError(RuntimeError):
    """A run holds a live lock in the store."""


@dataclass
class Garbage:
    """Directories to delete, each with its files' count and bytes."""

    dirs: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return sum(n for n, _ in self.dirs.values())

    @property
    def bytes(self) -> int:
        return sum(b for _, b in self.dirs.values())


def find_garbage(store: Store, lock_ttl_s: float = 120.0) -> Garbage:
    """What :func:`collect` would delete.

    Raises:
        StoreInUseError: A run holds a live lock in the store.
    """
    runs = list_runs(store)
    for run_id in runs:
        holder = RunLock(store, run_id, lock_ttl_s).holder()
        if holder is not None:
            raise StoreInUseError(f"run {run_id!r} is running in {store.uri} (process {holder.get('pid')} on "
                                  f"{holder.get('host')}); gc deletes nothing while a run works in the store")
    states = [store.read_json(run_json_key(run_id)) or {} for run_id in runs]
    used = set()
    for state in states:
        for stage in state.get("stages") or []:
            if stage.get("name") and stage.get("fingerprint"):
                used.add(f"stages/{stage['name']}-{stage['fingerprint']}")
    garbage = Garbage()
    _state_garbage(store, states, garbage)
    sizes = store.list_sizes("stages")
    by_stage: dict[str, dict[str, int]] = defaultdict(dict)
    for key, size in sizes.items():
        parts = key.split("/")
        if len(parts) >= 3:
            by_stage["/".join(parts[:2])][key] = size
    for stage, files in sorted(by_stage.items()):
        if stage not in used:
            garbage.dirs[stage] = (len(files), sum(files.values()))
            continue
        commit = store.read_json(f"{stage}/_COMMIT.json")
        if commit is not None:
            for prefix, group in _unnamed(stage, files, commit).items():
                garbage.dirs[prefix] = (len(group), sum(group.values()))
    return garbage


def _state_garbage(store: Store, runs: list[dict[str, Any]], garbage: Garbage) -> None:
    """Files of cross-run state (indexes, input records) that neither the newest version of
    their state nor the version a run not yet succeeded pinned names: segments a compaction
    folded into one file, tables of replaced versions. A succeeded run never reads its
    pinned state again (rerun with its config, an incremental run returns at once and any
    other reuses its committed stages), so only unfinished runs keep theirs."""
    pinned: dict[str, set[int]] = defaultdict(set)
    for state in runs:  # each run's run.json
        if state.get("status") != "succeeded":
            for prefix, version in (state.get("pins") or {}).items():
                pinned[prefix].add(int(version))
    for family in FAMILIES:
        by_state: dict[str, dict[str, int]] = defaultdict(dict)
        for key, size in store.list_sizes(family).items():
            parts = key.split("/")
            if len(parts) >= 4 and parts[2] in ("segments", "tables"):
                by_state["/".join(parts[:2])][key] = size
        for prefix, files in sorted(by_state.items()):
            versions = _versions(store, prefix)
            if not versions:
                continue
            live = {max(versions), *pinned.get(prefix, ())}
            used = {f for n in live if n in versions for f in versions[n].get("files") or []}
            unused: dict[str, dict[str, int]] = defaultdict(dict)
            for key, size in files.items():
                if key not in used:  # a segment is a directory of one file; a table one file
                    unused[key.rsplit("/", 1)[0] if "/segments/" in key else key][key] = size
            for where, group in sorted(unused.items()):
                garbage.dirs[where] = (len(group), sum(group.values()))


def _versions(store: Store, prefix: str) -> dict[int, dict[str, Any]]:
    """Every version of the state at ``prefix``, by number."""
    return {n: body for n in version_numbers(store, prefix)
            if (body := store.read_json(f"{prefix}/v-{n:05d}.json")) is not None}


def _unnamed(stage: str, files: dict[str, int], commit: dict[str, Any]) -> dict[str, dict[str, int]]:
    """A committed stage's wave directories its commit names no file of, and its shuffle
    leftovers, with their files."""
    artifact = (commit.get("artifact") or {}).get("files") or []
    named = {f["key"] for f in (commit.get("files") or []) + (commit.get("rejected") or []) + artifact}
    waves = {"/".join(k.split("/")[:3]) for k in named}
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for key, size in files.items():
        parts = key.split("/")
        if len(parts) < 4 or not parts[2].startswith("wave-"):
            continue
        wave = "/".join(parts[:3])
        if wave not in waves:
            out[wave][key] = size
        elif parts[3] == "shuffle":
            out[f"{wave}/shuffle"][key] = size
    return out


def collect(store: Store, dry_run: bool = False, lock_ttl_s: float = 120.0) -> Garbage:
    """Find the garbage and, unless ``dry_run``, delete it; returns what was (or would be) freed."""
    garbage = find_garbage(store, lock_ttl_s)
    if not dry_run:
        for prefix in garbage.dirs:
            store.delete_prefix(prefix)
    return garbage


def render(garbage: Garbage, dry_run: bool) -> str:
    lines = [f"{prefix}  ({n} files, {b / 1e6:.1f} MB)" for prefix, (n, b) in garbage.dirs.items()]
    verb = "would free" if dry_run else "freed"
    lines.append(f"{verb} {garbage.bytes / 1e6:.1f} MB in {garbage.files} files ({len(garbage.dirs)} directories)"
                 if garbage.dirs else "nothing to delete: every stage file is used by a run in the store")
    return "\n".join(lines)
