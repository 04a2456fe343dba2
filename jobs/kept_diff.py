"""`tamis diff`: which documents two runs kept differently after a stage, and why.

Each side's kept ids are the ids of its stage's committed document files; a document one
run kept and the other did not is counted by the other run's drop reason, taken from the
rejected rows of whichever of its stages (up to the compared one) removed it. Only ids,
drop reasons and the few example texts are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.row_output import quoted
from jobs.stage_rows import RunRecord, RunStage, columns_of, committed_files, rows_with, stage_files, stream_rows
from jobs.store import Store
from operators.base import DROP_REASON

ABSENT = ("-", "not in the run")
"""The (stage, reason) of an id the other run neither kept nor rejected (other input, a sample)."""


@dataclass
class RunSide:
    """What one run kept after a stage and why it removed what it removed before then."""

    run: RunRecord
    stage: RunStage
    files: tuple[str, ...]
    kept: set[str] = field(default_factory=set)
    removed: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (stage, drop reason)

    @property
    def name(self) -> str:
        return self.run.run_id


def load_side(store: Store, run: RunRecord, stage: RunStage) -> RunSide:
    """The ids ``run`` kept after ``stage`` and the (stage, reason) of every id removed up to it.

    Raises:
        InspectError: ``stage`` is not committed.
    """
    side = RunSide(run, stage, stage_files(store, run, stage).files)
    for batch in stream_rows(store, side.files, ["id"]):
        side.kept.update(batch["id"].to_pylist())
    for done in committed_files(store, run, stage):
        for batch in stream_rows(store, done.rejected, ["id", DROP_REASON]):
            for doc, reason in zip(batch["id"].to_pylist(), batch[DROP_REASON].to_pylist()):
                side.removed.setdefault(doc, (done.stage.name, reason))
    return side


def why_not_kept(ids: set[str], other: RunSide) -> dict[tuple[str, str], list[str]]:
    """``ids`` grouped by how ``other`` removed them: (stage, reason) -> sorted ids, most first."""
    groups: dict[tuple[str, str], list[str]] = {}
    for doc in sorted(ids):
        groups.setdefault(other.removed.get(doc, ABSENT), []).append(doc)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def render_diff(store: Store, a: RunSide, b: RunSide, examples: int) -> str:
    """The totals, then for each side the documents only it kept, counted by the other's drop
    reason, with up to ``examples`` ids and text previews per reason."""
    only_a, only_b = a.kept - b.kept, b.kept - a.kept
    out = [f"diff of kept documents: {a.name} after {a.stage.name}, {b.name} after {b.stage.name}",
           f"kept in both: {len(a.kept & b.kept):,}   only in {a.name}: {len(only_a):,}   "
           f"only in {b.name}: {len(only_b):,}"]
    for keeper, other, ids in ((a, b, only_a), (b, a, only_b)):
        out.append(f"\nkept by {keeper.name}, not by {other.name}: {len(ids):,}")
        groups = why_not_kept(ids, other)
        texts = _texts(store, keeper, [d for docs in groups.values() for d in docs[:examples]])
        for (stage, reason), docs in groups.items():
            where = "" if (stage, reason) == ABSENT else f" at {stage}"
            out.append(f"  {reason}{where}: {len(docs):,}")
            out += [f"    {doc}  {quoted(texts.get(doc))}" for doc in docs[:examples]]
    return "\n".join(out)


def _texts(store: Store, side: RunSide, ids: list[str]) -> dict[str, str | None]:
    """The texts of ``ids`` as ``side`` kept them."""
    if not ids or "text" not in columns_of(store, side.files):
        return {}
    found = rows_with(store, side.files, "id", ids, ["id", "text"])
    return dict(zip(found["id"].to_pylist(), found["text"].to_pylist())) if found.num_rows else {}
