"""Consecutive read and map stages run as one chain: each wave streams through all of them.

A map stage only needs its upstream's files one at a time, so a read or map stage and the
map stages after it run as one Ray Data job per wave: a file read (or mapped) by the first
stage goes on to the next stage's tasks or actors while the first works on other files,
so CPU stages and GPU actors are busy at once instead of one after another. Every stage
still writes its own files and commits its own waves and stage, exactly as alone::

    stages/<map>-<fp>/wave-00003-<digest of the upstream wave's prefix>/part-*.parquet

A map stage after a read or map stage *follows* its waves: its wave ``w`` maps the files of
the upstream's wave ``w`` and is named after that wave's prefix, so whether the two ran
chained or one after another (a resume after the upstream committed), the wave names and
commits are the same. Per wave, a rerun starts the chain at the first stage without a wave
commit; nothing committed is computed again.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from jobs import checkpoint as cp
from jobs import execute

if TYPE_CHECKING:
    from jobs.scheduler import RunScheduler

_WAVE = re.compile(r"/wave-(\d+)-[0-9a-f]+$")


def follows(scheduler: "RunScheduler", index: int) -> bool:
    """Whether plan entry ``index`` is a map stage whose upstream is a read or map stage."""
    return index >= 1 and scheduler.stages[index - 1].operator.kind == "map" and (
        index == 1 or scheduler.stages[index - 2].operator.kind == "map")


def chain_from(scheduler: "RunScheduler", index: int, plan: list[dict[str, Any]]) -> list[int]:
    """Plan entries to run together from ``index``: it and the following map stages not
    yet committed (just ``index`` when chaining is off or it is not a read or map stage)."""
    if index >= 1 and scheduler.stages[index - 1].operator.kind != "map":
        return [index]
    chain = [index]
    while scheduler.spec.execution.chain_maps and chain[-1] + 1 < len(plan) and follows(scheduler, chain[-1] + 1):
        entry = plan[chain[-1] + 1]
        if scheduler.store.read_json(f"{cp.stage_prefix(entry['name'], entry['fingerprint'])}/{cp.COMMIT}"):
            break
        chain.append(chain[-1] + 1)
    return chain


def _head_waves(scheduler: "RunScheduler", index: int, entry: dict[str, Any], files: list[Any],
                upstream: dict[str, Any] | None) -> list[tuple[int, str, list[str], int | None]]:
    """The first stage's waves: (number, prefix, input keys or URIs, input rows or None)."""
    name, fp, wave_bytes = entry["name"], entry["fingerprint"], int(scheduler.spec.execution.wave_mb * 2**20)
    if index == 0:
        waves = cp.plan_waves([(f.uri, f.size) for f in files], wave_bytes)
        return [(w, cp.wave_prefix(name, fp, w, inputs), inputs, None) for w, inputs in enumerate(waves)]
    assert upstream is not None
    if follows(scheduler, index):
        by_wave: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for f in upstream["files"]:
            by_wave[f["key"].rsplit("/", 1)[0]].append(f)
        ordered = sorted(by_wave.items(), key=lambda item: _wave_number(item[0]))
        return [(_wave_number(p), cp.wave_prefix(name, fp, _wave_number(p), [p]), [f["key"] for f in fs],
                 sum(f["rows"] for f in fs)) for p, fs in ordered]
    rows = {f["key"]: f["rows"] for f in upstream["files"]}
    waves = cp.plan_waves([(f["key"], f["bytes"]) for f in upstream["files"]], wave_bytes)
    return [(w, cp.wave_prefix(name, fp, w, inputs), inputs, sum(rows[k] for k in inputs))
            for w, inputs in enumerate(waves)]


def _wave_number(prefix: str) -> int:
    match = _WAVE.search(prefix)
    if match is None:
        raise RuntimeError(f"{prefix} is not a wave directory; a following map stage needs one")
    return int(match.group(1))


def run_chain(scheduler: "RunScheduler", indices: list[int], plan: list[dict[str, Any]], files: list[Any],
              upstream: dict[str, Any] | None) -> list[cp.WaveResult]:
    """Run the stages ``indices`` wave by wave; returns each stage's merged result."""
    head = indices[0]
    waves = _head_waves(scheduler, head, plan[head], files, upstream)
    uris = {f.uri: i for i, f in enumerate(files)}
    results: list[list[cp.WaveResult]] = [[] for _ in indices]
    for i in indices:
        scheduler._update(i, waves_total=len(waves))
    for done, (number, head_prefix, inputs, rows_in) in enumerate(waves):
        prefixes = [head_prefix]
        for i in indices[1:]:
            prefixes.append(cp.wave_prefix(plan[i]["name"], plan[i]["fingerprint"], number, [prefixes[-1]]))
        commits = [scheduler.store.read_json(f"{p}/{cp.COMMIT}") for p in prefixes]
        start = next((k for k, c in enumerate(commits) if c is None), len(indices))
        for k in range(start):
            results[k].append(cp.WaveResult.from_json(commits[k]))
        if start < len(indices):
            if start:  # resume inside the chain: the stage before committed this wave
                inputs = [f.key for f in results[start - 1][-1].files]
                rows_in = results[start - 1][-1].rows_out
            t0 = time.time()
            stats = _run_wave(scheduler, indices[start:], prefixes[start:], inputs, uris)
            seconds = time.time() - t0
            for k in range(start, len(indices)):
                mine = [r for r in stats if r["key"] == prefixes[k] or r["key"].startswith(prefixes[k] + "/")]
                result = cp.WaveResult.from_stats(inputs, mine, rows_in, seconds)
                results[k].append(cp.WaveResult.from_json(
                    cp.commit(scheduler.store, f"{prefixes[k]}/{cp.COMMIT}", result.to_json())))
                inputs, rows_in = [f.key for f in result.files], result.rows_out
        for k, i in enumerate(indices):
            scheduler._event(f"{plan[i]['name']}: wave {done + 1}/{len(waves)} " +
                             ("committed earlier, skipped" if k < start else
                              f"committed ({results[k][-1].rows_out:,} rows)"))
        for k, i in enumerate(indices):
            scheduler._update(i, waves_done=done + 1, rows_out=sum(r.rows_out for r in results[k]))
    return [cp.merge(r) for r in results]


def _run_wave(scheduler: "RunScheduler", indices: list[int], prefixes: list[str], inputs: list[str],
              uris: dict[str, int]) -> list[dict[str, Any]]:
    """One Ray Data job: the first stage on ``inputs``, each later one on what it writes."""
    store, ex = scheduler.store, scheduler.spec.execution
    steps = []
    for i, prefix in zip(indices, prefixes):
        if i == 0:
            continue
        stage = scheduler.stages[i - 1]
        steps.append(execute.MapStep(stage.name, stage.operator, stage.config, scheduler.output(prefix),
                                     stage.resources, scheduler.map_artifact(stage), ex.column_files))
    if indices[0] == 0:
        return execute.run_read([(uris[u], u) for u in inputs], scheduler.spec.input, scheduler.spec.s3_options(),
                                scheduler.output(prefixes[0]), ex.part_rows, ex.batch_rows, store, steps)
    return execute.run_map(steps, inputs, store, ex.batch_rows) if inputs else []
