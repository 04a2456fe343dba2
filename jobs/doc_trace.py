"""`tamis explain`: one document's path through a run, stage by stage.

For each committed stage in order: the columns it wrote for the document (the columns its
files hold that the stage before did not), or that it passed the document on unchanged,
or that it removed it, with the drop reason from its rejected rows. A document marked as
a duplicate is shown with the document kept in its place: for an exact duplicate the kept
document with the same normalized-text hash; for a near duplicate (``minhash_dedup``) its
cluster's keeper and their Jaccard, computed with the operator's own shingling and the
run's config for that stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from jobs.row_output import preview, quoted
from jobs.stage_rows import (InspectError, RunRecord, RunStage, StageFiles, columns_of, rows_with, stage_files,
                             stream_rows)
from jobs.store import Store
from operators.base import DROP_REASON
from operators.dedup.exact import HASH as EXACT_HASH
from operators.dedup.exact import KEEP as EXACT_KEEP

if TYPE_CHECKING:
    from operators.dedup.minhash_config import MinhashDedupConfig


KEPT, PASSED, REMOVED = "kept", "passed", "removed"


@dataclass(frozen=True)
class StageStep:
    """What one stage did with the document."""

    stage: str
    outcome: str  # KEPT (wrote columns), PASSED, REMOVED, or why it is not known
    values: dict[str, Any] = field(default_factory=dict)  # the columns it wrote (removed: its rejected row's new ones)
    reason: str | None = None  # the drop reason, when removed
    rule: str | None = None  # a filter's keep-rule that gave that reason

    def describe(self) -> str:
        if self.outcome != REMOVED:
            return self.outcome
        return f"removed: {self.reason}" + (f" (fails the keep rule {self.rule!r})" if self.rule else "")


@dataclass
class DocTrace:
    """A document's path through a run: its steps, its columns as last seen, its duplicates."""

    run: RunRecord
    doc_id: str
    steps: list[StageStep] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)
    matches: list[str] = field(default_factory=list)

    @property
    def ending(self) -> str:
        last = self.steps[-1]
        if last.outcome == REMOVED:
            return f"removed at {last.stage} ({last.reason})"
        return f"kept through {last.stage}" if last.outcome in (KEPT, PASSED) else f"{last.stage}: {last.outcome}"


def trace(store: Store, run: RunRecord, doc_id: str) -> DocTrace:
    """Follow ``doc_id`` through every committed stage of ``run``.

    Raises:
        InspectError: the read stage is not committed, or neither kept nor rejected the id.
    """
    found = DocTrace(run, doc_id)
    before: list[str] = []
    for stage in run.stages:
        try:
            files = stage_files(store, run, stage)
        except InspectError:
            if stage.index == 0:
                raise
            found.steps.append(StageStep(stage.name, f"not committed yet (status {stage.status})"))
            break
        step, before = _step(store, run, stage, files, doc_id, before, found.row)
        if step is None:
            if stage.index == 0:
                raise InspectError(f"no document {doc_id!r} in run {run.run_id} (its read stage kept ids such as "
                                   f"{', '.join(_some_ids(store, files))})")
            found.steps.append(StageStep(stage.name, "not in this stage's output nor its rejected rows"))
            break
        found.steps.append(step)
        if step.outcome == REMOVED:
            break
    found.matches = _exact_match(store, run, found.row) + _near_match(store, run, found.row)
    return found


def _step(store: Store, run: RunRecord, stage: RunStage, files: StageFiles, doc_id: str, before: list[str],
          row: dict[str, Any]) -> tuple[StageStep | None, list[str]]:
    """The stage's step for ``doc_id`` (None: not there) and its columns; adds what it
    learns of the document to ``row`` (a rejected row holds all the document's columns)."""
    columns = columns_of(store, files.files) or before
    wrote = [c for c in columns if c not in before and c != "id"]
    kept = rows_with(store, files.files, "id", [doc_id], ["id", *wrote])
    if kept.num_rows:
        values = {c: kept[c][0].as_py() for c in wrote}
        row.update(values)
        return StageStep(stage.name, KEPT if wrote else PASSED, values), columns
    rejected = rows_with(store, files.rejected, "id", [doc_id], columns_of(store, files.rejected))
    if not rejected.num_rows:
        return None, columns
    row.update({c: rejected[c][0].as_py() for c in rejected.column_names})
    # what the stage adds to its rejected rows alone (the read stage's input_uri, input_line, raw)
    extra = {c: row[c] for c in rejected.column_names if c not in before and c not in ("id", DROP_REASON)}
    reason = row[DROP_REASON]
    return StageStep(stage.name, REMOVED, extra, reason, _failed_rule(run, stage, reason)), columns


def _failed_rule(run: RunRecord, stage: RunStage, reason: str) -> str | None:
    """The keep-rule of a ``filter`` stage that gives ``reason`` (the first that does)."""
    if stage.op != "filter":
        return None
    from operators.filtering.expression import parse_expression
    from operators.filtering.filter import FilterConfig, default_reason

    for rule in FilterConfig.model_validate(run.stage_config(stage)).resolved_rules():
        if (rule.reason or default_reason(parse_expression(rule.keep))) == reason:
            return rule.keep
    return None


def _some_ids(store: Store, files: StageFiles, count: int = 3) -> list[str]:
    for batch in stream_rows(store, files.files, ["id"]):
        return [repr(i) for i in batch["id"].to_pylist()[:count]]
    return ["(none)"]


def _committed(store: Store, run: RunRecord, op: str) -> StageFiles | None:
    """The last committed stage of ``run`` running ``op``, if any."""
    for stage in reversed(run.stages_of(op)):
        try:
            return stage_files(store, run, stage)
        except InspectError:
            continue
    return None


def _exact_match(store: Store, run: RunRecord, row: dict[str, Any]) -> list[str]:
    """For an exact duplicate: the document kept for its hash (the keeper of exact_dedup.keep)."""
    keep = _committed(store, run, "exact_dedup.keep")
    if row.get(EXACT_KEEP) is not False or keep is None:
        return []
    same = rows_with(store, keep.files, EXACT_HASH, [row[EXACT_HASH]], ["id", "text", EXACT_KEEP], first_only=False)
    keepers = [r for r in same.to_pylist() if r[EXACT_KEEP]] if same.num_rows else []
    if not keepers:
        return [f"exact duplicate (same {EXACT_HASH} {row[EXACT_HASH]}); its keeper is not in {keep.stage.name}"]
    return [f"exact duplicate of {keepers[0]['id']} (same {EXACT_HASH} {row[EXACT_HASH]}): "
            f"{quoted(keepers[0]['text'])}"]


def _near_match(store: Store, run: RunRecord, row: dict[str, Any]) -> list[str]:
    """For a near duplicate: its cluster's keeper and the exact Jaccard of their shingle sets."""
    keep = _committed(store, run, "minhash_dedup.keep")
    if keep is None:
        return []
    # imported only for a run with near-dup removal: they load the numba kernels
    from operators.dedup.minhash_config import MinhashDedupConfig
    from operators.dedup.near_keep import CLUSTER_ID as NEAR_CLUSTER
    from operators.dedup.near_keep import KEEP as NEAR_KEEP

    if row.get(NEAR_KEEP) is not False:
        return []
    keeper = row.get(NEAR_CLUSTER)
    read = stage_files(store, run, run.stages[0])
    found = rows_with(store, read.files, "id", [keeper], ["id", "text"]) if keeper else None
    if found is None or not found.num_rows:
        return [f"near duplicate of {keeper or 'a document'} found in the index of earlier runs "
                f"({NEAR_CLUSTER}; not a document of this run)"]
    config = MinhashDedupConfig.model_validate(run.stage_config(keep.stage))
    similarity = jaccard(row.get("text"), found["text"][0].as_py(), config)
    shingles = f"character {config.char_ngram}-gram" if config.char_ngram else f"word {config.ngram}-gram"
    lines = [f"near duplicate of {keeper} ({NEAR_CLUSTER}): Jaccard {similarity:.3f} of their {shingles} "
             f"shingles (threshold {config.threshold}): {quoted(found['text'][0].as_py())}"]
    if similarity < config.threshold:  # max_hops > 1: removed as the copy of a removed copy
        lines.append(f"below the threshold: removed through a chain of at most {config.max_hops or 'any number of'} "
                     f"verified links (max_hops), each at or above {config.threshold}, to its keeper")
    return lines


def jaccard(a: str | None, b: str | None, config: MinhashDedupConfig) -> float:
    """Exact Jaccard of two texts' shingle sets, shingled as ``minhash_dedup.keep`` compares them with ``config``."""
    from operators.dedup import minhash_math as mm
    from operators.dedup.minhash_config import verification_sets

    sets = verification_sets(pa.array([a, b], pa.string()), config)
    return mm.jaccard(sets.doc(0), sets.doc(1))


def render_trace(found: DocTrace) -> str:
    """The document's ending, its text, each stage's step, then its duplicates' lines."""
    out = [f"document {found.doc_id} in run {found.run.run_id} ({found.run.pipeline}): {found.ending}",
           f"text: {quoted(found.row.get('text'))}", ""]
    width = max(len(s.stage) for s in found.steps)
    for step in found.steps:
        out.append(f"{step.stage.ljust(width)}  {step.describe()}")
        out += [f"  {column} = {preview(value)}" for column, value in step.values.items() if column != "text"]
    if found.matches:
        out += [""] + found.matches
    return "\n".join(out)
