"""A fit run as rounds of distributed group steps (see :class:`operators.base.Rounds`).

Each round is one hash-partitioned group step over the previous round's artifact, committed
under the fit stage's prefix before the next starts::

    stages/<stage>-<fp>/round-00000-large_star/artifact/part-*.parquet
    stages/<stage>-<fp>/round-00000-large_star/_COMMIT.json

A rerun reads the commits in order (:meth:`jobs.ledger.StageLedger.run_wave`) and resumes
at the first missing round; as every round's input is the previous round's committed
output, the sequence of rounds is the same however often the run is interrupted.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from jobs.checkpoint import FileRef, WaveResult
from jobs.ledger import RunContext, StageEntry, Stats
from jobs.parts import metrics_row


def run_rounds(ctx: RunContext, entry: StageEntry, keys: list[str], input_rows: int) -> Stats:
    """Run the fit's rounds over the artifact ``keys`` (``input_rows`` rows in all); returns
    the stats rows of the final artifact and the metrics."""
    stage = entry.stage
    assert stage is not None and stage.operator.rounds is not None
    rounds = stage.operator.rounds
    ex, executor = ctx.spec.execution, ctx.executor
    refs = [FileRef(k, 0, _size(ctx.store, k)) for k in keys]
    number = 0

    def one(step: Any) -> WaveResult:
        nonlocal number, refs
        short = step.name.rsplit(".", 1)[-1]
        out = ctx.output(f"{entry.prefix}/round-{number:05d}-{short}")

        def run(_: int, inputs: list[str]) -> Stats:
            # as for group stages: the rows in memory are about 4 times their Parquet bytes
            partitions = max(executor.cluster_cpus(),
                             math.ceil(4 * sum(r.bytes for r in refs) / (ex.group_partition_mb << 20)))
            return executor.run_group(step, stage.config, inputs, ctx.store, out, partitions, ex.batch_rows,
                                      stage.resources) if inputs else []

        [result], reused = ctx.ledger.run_wave([out.prefix], [r.key for r in refs], None, run)
        ctx.progress.event(f"{entry.name}: round {number} ({short}) " + (
            "committed earlier, skipped" if reused else
            f"committed: {sum(f.rows for f in result.artifact):,} rows, {dict(result.metrics)}"))
        ctx.progress.stage(entry.index, waves_done=number + 1)
        number += 1
        refs = result.artifact
        return result

    for _ in range(rounds.max_rounds):
        if one(rounds.steps[0]).metrics.get(rounds.converged_metric, 0) == 0:
            break
        for step in rounds.steps[1:]:
            one(step)
    else:
        raise RuntimeError(f"{entry.name}: no fixed point after {rounds.max_rounds} rounds")
    converged_at = number
    metrics: Counter[str] = Counter()
    for step in rounds.finish:
        last = one(step)
        metrics.update(last.metrics)
    metrics.update({"candidate_edges": input_rows, "candidate_documents": sum(f.rows for f in refs),
                    "component_rounds": converged_at})
    kind = "artifact_by_file" if last.artifact_by_file else "artifact"
    return [{"kind": kind, "key": f.key, "rows": f.rows, "bytes": f.bytes, "reasons": "{}"} for f in refs] \
        + metrics_row(dict(metrics))


def _size(store: Any, key: str) -> int:
    return int(store.fs.get_file_info(store.fs_path(key)).size or 0)
