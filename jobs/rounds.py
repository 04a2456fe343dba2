"""A fit run as rounds of distributed group steps (see :class:`operators.base.Rounds`).

Each round is one hash-partitioned ``groupby`` over the previous round's artifact, committed
under the fit stage's prefix before the next starts::

    stages/<stage>-<fp>/round-00000-large_star/artifact/part-*.parquet
    stages/<stage>-<fp>/round-00000-large_star/_COMMIT.json

A rerun reads the commits in order and resumes at the first missing round; as every round's
input is the previous round's committed output, the sequence of rounds is the same however
often the run is interrupted.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from jobs import checkpoint as cp
from jobs import execute
from jobs.parts import metrics_row

if TYPE_CHECKING:
    from jobs.scheduler import RunScheduler
    from jobs.spec import PlannedStage


def run_rounds(scheduler: "RunScheduler", index: int, entry: dict[str, Any], stage: "PlannedStage",
               keys: list[str], input_rows: int) -> list[dict[str, Any]]:
    """Run ``stage``'s rounds over the artifact ``keys`` (``input_rows`` rows in all); returns
    the stats rows of the final artifact and the metrics."""
    rounds = stage.operator.rounds
    assert rounds is not None
    prefix = cp.stage_prefix(entry["name"], entry["fingerprint"])
    store, ex = scheduler.store, scheduler.spec.execution
    refs = [cp.FileRef(k, 0, _size(store, k)) for k in keys]
    metrics: Counter[str] = Counter()
    number = 0

    def one(step: Any) -> cp.WaveResult:
        nonlocal number, refs
        short = step.name.rsplit(".", 1)[-1]
        out = scheduler.output(f"{prefix}/round-{number:05d}-{short}")
        key = f"{out.prefix}/{cp.COMMIT}"
        existing = store.read_json(key)
        if existing is not None:
            result = cp.WaveResult.from_json(existing)
            scheduler._event(f"{entry['name']}: round {number} ({short}) committed earlier, skipped")
        else:
            t0 = time.time()
            inputs = [r.key for r in refs]
            memory_bytes = 4 * sum(r.bytes for r in refs)  # as for group stages: Parquet is ~4x smaller
            partitions = max(execute.cluster_cpus(), math.ceil(memory_bytes / (ex.group_partition_mb << 20)))
            stats = execute.run_group(step, stage.config, inputs, store, out, partitions, ex.batch_rows,
                                      stage.resources) if inputs else []
            result = cp.WaveResult.from_stats(inputs, stats, None, time.time() - t0)
            result = cp.WaveResult.from_json(cp.commit(store, key, result.to_json()))
            scheduler._event(f"{entry['name']}: round {number} ({short}) committed: "
                             f"{sum(f.rows for f in result.artifact):,} rows, {dict(result.metrics)}")
        scheduler._update(index, waves_done=number + 1)
        number += 1
        refs = result.artifact
        return result

    for _ in range(rounds.max_rounds):
        if one(rounds.steps[0]).metrics.get(rounds.converged_metric, 0) == 0:
            break
        for step in rounds.steps[1:]:
            one(step)
    else:
        raise RuntimeError(f"{entry['name']}: no fixed point after {rounds.max_rounds} rounds")
    converged_at = number
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
