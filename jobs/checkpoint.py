"""Store layout, fingerprints and commits: what makes a stage's output reusable.

A stage writes under ``stages/<stage>-<fingerprint>/``, each wave in its own directory closed
by a ``_COMMIT.json``, the stage by one of its own (docs/operations.md has the whole layout).
A fingerprint hashes the operator name and version, its canonical config and the upstream
fingerprint; the read stage's hashes the input files (URI, size, version) and the input
config. Commits are created with the store's conditional put and never overwritten: only
files a commit names are ever read, so stray files from a dead attempt are harmless.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from jobs.store import InputFile, Store

COMMIT = "_COMMIT.json"


def fingerprint(payload: Any) -> str:
    """16 hex digits of SHA-256 over canonical JSON."""
    data = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def stage_prefix(name: str, fp: str) -> str:
    return f"stages/{name}-{fp}"


def run_json_key(run_id: str) -> str:
    """Where a run's state (``run.json``) lives in the store."""
    return f"runs/{run_id}/run.json"


def commit_key(prefix: str) -> str:
    """The commit object of the stage, wave or round written under ``prefix``."""
    return f"{prefix}/{COMMIT}"


def wave_prefix(name: str, fp: str, wave: int, inputs: list[str]) -> str:
    """A wave's directory, named by its number and a digest of its inputs: a wave planned
    differently (say after ``wave_mb`` changed) never reuses another plan's commit."""
    return f"{stage_prefix(name, fp)}/wave-{wave:05d}-{fingerprint(inputs)[:8]}"


@dataclass(frozen=True)
class FileRef:
    """A committed checkpoint file."""

    key: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Artifact:
    """A stage's side table as later stages are given it: its files, whether they are split
    per document file (see operators.base.FILE_COLUMN), and its rows."""

    files: list[str]
    by_file: bool = False
    rows: int = 0


@dataclass
class WaveResult:
    """What one wave (or a whole group/fit stage) wrote, built from the tasks' stats rows."""

    inputs: list[str]
    files: list[FileRef] = field(default_factory=list)
    rejected: list[FileRef] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    rows_in: int = 0
    seconds: float = 0.0
    artifact: list[FileRef] = field(default_factory=list)  # a stage's side table, if any
    artifact_by_file: bool = False  # split per document file (see operators.base.FILE_COLUMN)
    metrics: Counter[str] = field(default_factory=Counter)  # operators' counters, summed

    @classmethod
    def from_stats(cls, inputs: list[str], stats: list[dict[str, Any]], rows_in: int | None,
                   seconds: float) -> "WaveResult":
        result = cls(inputs=inputs, seconds=seconds)
        for row in sorted(stats, key=lambda r: r["key"]):
            ref = FileRef(row["key"], int(row["rows"]), int(row["bytes"]))
            if row["kind"] == "metrics":
                result.metrics.update(json.loads(row["reasons"]))
            elif row["kind"] == "rejected":
                result.rejected.append(ref)
                result.dropped.update(json.loads(row["reasons"]))
            elif row["kind"].startswith("artifact"):
                result.artifact.append(ref)
                result.artifact_by_file = row["kind"] == "artifact_by_file"
            else:
                result.files.append(ref)
        out = sum(f.rows for f in result.files)
        result.rows_in = rows_in if rows_in is not None else out + sum(result.dropped.values())
        return result

    @property
    def rows_out(self) -> int:
        return sum(f.rows for f in self.files)

    def made(self) -> Artifact:
        """The artifact this result wrote (one with no files when it wrote none)."""
        return Artifact([f.key for f in self.artifact], self.artifact_by_file, sum(f.rows for f in self.artifact))

    def to_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "files": [f.__dict__ for f in self.files],
                "rejected": [f.__dict__ for f in self.rejected], "dropped": dict(self.dropped),
                "rows_in": self.rows_in, "rows_out": self.rows_out, "seconds": round(self.seconds, 3),
                "artifact": {"files": [f.__dict__ for f in self.artifact], "by_file": self.artifact_by_file}
                if self.artifact else None, "metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "WaveResult":
        return cls(inputs=list(obj["inputs"]), files=[FileRef(**f) for f in obj["files"]],
                   rejected=[FileRef(**f) for f in obj["rejected"]], dropped=Counter(obj["dropped"]),
                   rows_in=int(obj["rows_in"]), seconds=float(obj.get("seconds", 0)),
                   artifact=[FileRef(**f) for f in (obj.get("artifact") or {}).get("files", [])],
                   artifact_by_file=bool((obj.get("artifact") or {}).get("by_file")),
                   metrics=Counter(obj.get("metrics") or {}))


def merge(results: list[WaveResult]) -> WaveResult:
    total = WaveResult(inputs=[k for r in results for k in r.inputs])
    for r in results:
        total.files += r.files
        total.rejected += r.rejected
        total.dropped.update(r.dropped)
        total.rows_in += r.rows_in
        total.seconds += r.seconds
        total.artifact += r.artifact
        total.artifact_by_file = total.artifact_by_file or r.artifact_by_file
        total.metrics.update(r.metrics)
    return total


def passthrough_stats(files: list[FileRef]) -> list[dict[str, Any]]:
    """Stats rows that re-list upstream document files as a stage's own (documents unchanged)."""
    return [{"kind": "kept", "key": f.key, "rows": f.rows, "bytes": f.bytes, "reasons": "{}"} for f in files]


def read_fingerprint(files: list[InputFile], input_config: dict[str, Any]) -> str:
    return fingerprint({"op": "read", "files": [(f.uri, f.size, f.version) for f in files],
                        "input": input_config})


def operator_fingerprint(name: str, version: int, config: dict[str, Any], upstream: str) -> str:
    return fingerprint({"op": name, "version": version, "config": config, "upstream": upstream})


def plan_waves(sizes: list[tuple[str, int]], wave_bytes: int) -> list[list[str]]:
    """Consecutive runs of inputs of at most ``wave_bytes`` (at least one input each)."""
    waves: list[list[str]] = []
    current: list[str] = []
    total = 0
    for key, size in sizes:
        if current and total + size > wave_bytes:
            waves.append(current)
            current, total = [], 0
        current.append(key)
        total += size
    if current:
        waves.append(current)
    return waves


def plan_even(sizes: list[tuple[str, int]], budget: int) -> list[list[str]]:
    """As many consecutive runs of inputs as :func:`plan_waves` makes, cut so that their byte
    totals come out about equal (a run may then pass ``budget`` by part of one input).

    Output shards are written one task each: packed greedily, the shards can be very uneven,
    and the largest then runs alone.
    """
    count = len(plan_waves(sizes, budget))
    total = sum(size for _, size in sizes)
    groups: list[list[str]] = []
    current: list[str] = []
    done = 0
    for key, size in sizes:
        share = total * (len(groups) + 1) / max(count, 1)  # where this run should end
        if current and len(groups) < count - 1 and abs(done + size - share) > abs(done - share):
            groups.append(current)
            current = []
        current.append(key)
        done += size
    if current:
        groups.append(current)
    return groups


def commit(store: Store, key: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the commit at ``key``; if another writer got there first, adopt theirs.

    Two writers can only race on the same fingerprint, so both outputs are the same
    computation; the first commit wins and the second writer reads it back.
    """
    if store.create_json(key, body):
        return body
    existing = store.read_json(key)
    if existing is None:  # deleted in between: should not happen, fail loudly
        raise RuntimeError(f"commit {store.url(key)} was refused but cannot be read")
    return existing
