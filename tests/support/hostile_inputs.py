"""Hostile input files built by code, each record with the outcome it must have (issue 21).

A test builds its files with :class:`JsonlFile` / :class:`ParquetFile`, runs them, and hands
what came out (documents and every ``rejected/`` row) to :func:`account`, which matches each
output or rejected row back to the record it came from and lists every record whose outcome
is not an allowed one, by file, line and label, so a failure names the record that broke.

How a row is traced back to its record:

- every record meant to become a document carries a *marker* word in its text
  (``mk<file>l<line>``), so a kept document and a row rejected after the read (``dedup:*``,
  ``read:duplicate_id``) are found by the marker in their text;
- a row the read stage rejects carries ``input_uri`` and ``input_line`` (the 0-based line
  or row number in its file), which name the record even when its text could not be parsed.

Conventions asserted (what the read stage does today, docs/architecture.md):

- a *line* is what ends at ``\\n`` (so ``\\r\\n`` line ends are read as lines whose JSON ends in
  whitespace, and a file using bare ``\\r`` line ends is one line);
- a line that is empty or only ASCII whitespace (``bytes.strip``: space, ``\\t``, ``\\n``,
  ``\\r``, ``\\x0b``, ``\\x0c``) is a separator, not a record: it yields no row anywhere; a
  UTF-8 byte-order mark is dropped from the first line of a file only, so a first line that
  is a byte-order mark and whitespace is a separator too;
- every other line is a record: exactly one document or one rejected row;
- a truncated or corrupt compressed file yields one ``read:corrupt_file`` row (under the
  default ``input.on_corrupt_file: skip``), plus, at most, documents for records it decoded
  before the damage, each with its exact text;
- documents sharing an id: the first in input order (files sorted by URI, then line order)
  stays, every later one is rejected as ``read:duplicate_id`` (``input.duplicate_ids``
  default ``quarantine``); a record rejected by the read stage is not an occurrence.
"""

from __future__ import annotations

import decimal
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DOC = "doc"
ANY_READ = "read:*"  # any read-stage rejection: the reason is not pinned down
ABSENT = "absent"  # the record may yield nothing (only for records of a corrupt file)
MARKER = re.compile(r"\bmk\d+l\d+\b", re.IGNORECASE)


def vocabulary(seed: int = 21, size: int = 6000) -> list[str]:
    """Pronounceable made-up words: random texts built from them share no word 5-grams."""
    rng = random.Random(seed)
    onsets, vowels, codas = "bcdfghjklmnprstvwz", "aeiou", ["", "n", "r", "s", "l", "m", "x"]
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.randint(2, 4)
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables)))
    return sorted(words)


class Texts:
    """Random texts; the same key gives the same words, so near-copies differ in the marker only."""

    def __init__(self, seed: int = 21) -> None:
        self.words = vocabulary(seed)
        self.seed = seed

    def body(self, key: str, n: int = 80) -> str:
        rng = random.Random(f"{self.seed}:{key}")
        return " ".join(rng.choice(self.words) for _ in range(n))

    def text(self, marker: str, key: str | None = None, n: int = 80) -> str:
        return f"{self.body(key or marker, n)} {marker}"


@dataclass
class Record:
    """One line or row of an input file and the outcomes allowed for it."""

    file: str
    line: int
    label: str
    allowed: frozenset[str]  # empty: not a record (a blank line)
    marker: str | None = None
    text: str | None = None  # a document's exact text, when kept
    id: str | None = None  # a document's exact id, when kept (None: not checked)
    metadata: Any = None  # the document's metadata, parsed with exact decimals (None: not checked)
    outcomes: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line} [{self.label}]"


def _allowed(allowed: str | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    return frozenset([allowed]) if isinstance(allowed, str) else frozenset(allowed)


class JsonlFile:
    """A JSON lines file built line by line, each line with its expected outcome."""

    def __init__(self, name: str, number: int) -> None:
        self.name, self.number = name, number
        self.chunks: list[bytes] = []
        self.records: list[Record] = []

    def marker(self) -> str:
        """The marker of the next line."""
        return f"mk{self.number}l{len(self.chunks)}"

    def add(self, label: str, line: bytes, allowed: str | tuple[str, ...], *, end: bytes = b"\n",
            text: str | None = None, id: str | None = None, metadata: Any = None,
            marker: str | None = None) -> Record:
        """Append ``line`` + ``end``; ``marker`` defaults to the marker found in ``text``."""
        if marker is None and text is not None:
            found = MARKER.findall(text)
            marker = found[-1] if found else None
        record = Record(self.name, len(self.chunks), label, _allowed(allowed), marker, text, id, metadata)
        self.chunks.append(line + end)
        self.records.append(record)
        return record

    def doc(self, label: str, record: dict[str, Any], allowed: str | tuple[str, ...] = DOC, *,
            end: bytes = b"\n", ensure_ascii: bool = False, check_id: bool = True) -> Record:
        """A JSON object line; its text, id (when a string) and other fields are checked if kept."""
        rest = {k: v for k, v in record.items() if k not in ("id", "text", "source")}
        given_id = record.get("id")
        return self.add(label, json.dumps(record, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass"),
                        allowed, end=end, text=record.get("text") if isinstance(record.get("text"), str) else None,
                        id=given_id if check_id and isinstance(given_id, str) else None,
                        metadata=rest or None)

    def blank(self, label: str, line: bytes, end: bytes = b"\n") -> Record:
        """A separator line: no row may come of it."""
        return self.add(label, line, frozenset(), end=end)

    def data(self) -> bytes:
        return b"".join(self.chunks)


class ParquetFile:
    """A Parquet file built row by row, each row with its expected outcome."""

    def __init__(self, name: str, number: int) -> None:
        self.name, self.number = name, number
        self.rows: list[dict[str, Any]] = []
        self.records: list[Record] = []

    def marker(self) -> str:
        return f"mk{self.number}l{len(self.rows)}"

    def add(self, label: str, row: dict[str, Any], allowed: str | tuple[str, ...], *,
            text: str | None = None, id: str | None = None) -> Record:
        found = MARKER.findall(text) if text else []
        record = Record(self.name, len(self.rows), label, _allowed(allowed), found[-1] if found else None, text, id)
        self.rows.append(row)
        self.records.append(record)
        return record

    def write(self, directory: Path, schema: pa.Schema) -> Path:
        path = directory / self.name
        pq.write_table(pa.Table.from_pylist(self.rows, schema=schema), path)
        return path


def exact(value: str) -> Any:
    """JSON parsed with numbers kept exactly (Decimal) and NaN/Infinity refused."""
    def constant(name: str) -> Any:
        raise ValueError(f"not JSON: {name}")
    return json.loads(value, parse_float=decimal.Decimal, parse_int=decimal.Decimal, parse_constant=constant)


def _normalized(value: Any) -> Any:
    """``value`` with every number a Decimal, for comparing parsed JSON exactly."""
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
    return value


@dataclass
class Accounting:
    """What :func:`account` found: the problems, and the outcome of every record."""

    problems: list[str]
    records: list[Record]
    corrupt_rows: dict[str, int]

    def table(self) -> str:
        return "\n".join(f"{r.where}: {r.outcomes or ['-']} (allowed {sorted(r.allowed) or ['nothing']})"
                         for r in self.records)


def account(records: list[Record], output: pa.Table, rejected: pa.Table,
            corrupt_files: tuple[str, ...] = ()) -> Accounting:
    """Trace every output and rejected row to its record; list what breaks the ground truth.

    ``rejected`` is every ``rejected/`` row of the run, with at least ``id``, ``text`` and
    ``drop_reason`` (and ``input_uri``, ``input_line`` where the stage wrote them).
    ``corrupt_files`` must each yield exactly one ``read:corrupt_file`` row.
    """
    problems: list[str] = []
    by_marker: dict[str, Record] = {}
    by_line: dict[tuple[str, int], Record] = {}
    by_id: dict[str, Record] = {}  # records without a marker (texts that cannot carry one)
    for record in records:
        record.outcomes = []
        by_line[(record.file, record.line)] = record
        if record.marker:
            if record.marker in by_marker:
                raise ValueError(f"two records with marker {record.marker}")
            by_marker[record.marker] = record
        elif record.id is not None and DOC in record.allowed:
            by_id[record.id] = record

    def by_text(text: str | None, doc_id: str | None = None) -> Record | None:
        found = [by_marker[m] for m in MARKER.findall(text or "") if m in by_marker]
        return found[-1] if found else by_id.get(doc_id) if doc_id is not None else None

    for row in output.to_pylist():
        record = by_text(row.get("text"), row.get("id"))
        if record is None:
            problems.append(f"output row id={str(row.get('id'))[:60]!r} text={str(row.get('text'))[:80]!r} "
                            "matches no input record")
            continue
        record.outcomes.append(DOC)
        if record.text is not None and row["text"] != record.text:
            at = next((i for i, (a, b) in enumerate(zip(row["text"], record.text)) if a != b),
                      min(len(row["text"]), len(record.text)))
            problems.append(f"{record.where}: text changed at character {at}: "
                            f"{row['text'][max(at - 10, 0):at + 30]!r} != {record.text[max(at - 10, 0):at + 30]!r}")
        if record.id is not None and row["id"] != record.id:
            problems.append(f"{record.where}: id changed: {row['id'][:80]!r} != {record.id[:80]!r}")
        if record.metadata is not None:
            try:
                got = exact(row.get("metadata") or "{}")
            except ValueError as err:
                problems.append(f"{record.where}: metadata is not JSON ({err}): {str(row.get('metadata'))[:120]!r}")
            else:
                if got != _normalized(record.metadata):
                    problems.append(f"{record.where}: metadata changed: {str(row.get('metadata'))[:120]!r}")

    corrupt: dict[str, int] = defaultdict(int)
    columns = set(rejected.column_names)
    for row in rejected.to_pylist():
        reason = row["drop_reason"]
        uri = row.get("input_uri") if "input_uri" in columns else None
        line = row.get("input_line") if "input_line" in columns else None
        name = Path(uri).name if uri else None
        if reason == "read:corrupt_file":
            corrupt[name or "?"] += 1
            continue
        record = None
        if reason.startswith("read:") and name is not None and line is not None:
            record = by_line.get((name, line))
        if record is None:
            record = by_text(row.get("text"), row.get("id"))
        if record is None:
            problems.append(f"rejected row {reason} id={str(row.get('id'))[:60]!r} at {name}:{line} "
                            f"text={str(row.get('text'))[:80]!r} matches no input record")
            continue
        record.outcomes.append(reason)

    for name in corrupt_files:
        if corrupt.get(name, 0) != 1:
            problems.append(f"{name}: expected one read:corrupt_file row, got {corrupt.get(name, 0)}")
    for name, count in corrupt.items():
        if name not in corrupt_files:
            problems.append(f"{name}: unexpected read:corrupt_file rows ({count})")

    for record in records:
        got = record.outcomes
        if not record.allowed:
            if got:
                problems.append(f"{record.where}: a separator line, yet it gave {got}")
            continue
        if len(got) > 1:
            problems.append(f"{record.where}: counted {len(got)} times: {got} (allowed {sorted(record.allowed)})")
        elif not got:
            if ABSENT not in record.allowed:
                problems.append(f"{record.where}: lost: no document and no rejected row "
                                f"(allowed {sorted(record.allowed)})")
        elif not _is_allowed(got[0], record.allowed):
            problems.append(f"{record.where}: got {got[0]}, allowed {sorted(record.allowed)}")
    return Accounting(problems, records, dict(corrupt))


def _is_allowed(outcome: str, allowed: frozenset[str]) -> bool:
    return outcome in allowed or (ANY_READ in allowed and outcome.startswith("read:"))


def read_all_rejected(store_root: Path) -> pa.Table:
    """Every ``rejected/`` row of a local store, with the columns :func:`account` reads."""
    names = ["id", "text", "drop_reason", "input_uri", "input_line"]
    types = [pa.string(), pa.string(), pa.string(), pa.string(), pa.int64()]
    tables = []
    for path in sorted((store_root / "stages").rglob("*.parquet")):
        if "rejected" not in path.parts:
            continue
        table = pq.read_table(path)
        tables.append(pa.table({n: table[n].cast(t) if n in table.column_names else pa.nulls(table.num_rows, t)
                                for n, t in zip(names, types)}))
    return pa.concat_tables(tables) if tables else pa.table({n: pa.array([], t) for n, t in zip(names, types)})
