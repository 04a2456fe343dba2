"""The run's life cycle: plan stages, skip committed ones, run the rest, commit, report.

:class:`RunScheduler` is plain Python so tests can drive it in-process; the CLI runs it as
a named Ray actor (:func:`start_actor`) that answers :meth:`RunScheduler.status` while
:meth:`RunScheduler.run` works. Everything it knows is in the store: a new scheduler for the
same run id rebuilds its position from the commits and resumes.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import socket
import threading
import time
import traceback
from typing import Any

from jobs import checkpoint as cp
from jobs import execute, shuffle
from jobs.lock import RunLock
from jobs.chain import chain_from, run_chain
from jobs.index import MinhashIndex
from jobs.models import StagedModel, model_field, stage_model
from jobs.output import write_output
from jobs.rounds import run_rounds
from jobs.spec import PipelineSpec, PlannedStage, ResourcesSpec, plan_stages, redacted_config
from jobs.store import Store, resolve_inputs

log = logging.getLogger(__name__)

ACTOR_NAMESPACE = "tamis"
MAX_EVENTS = 500
SAMPLE_MARGIN = 2.0
"""Group partitions are sized for this many times the bytes a sample projects."""


def actor_name(run_id: str) -> str:
    return f"scheduler-{run_id}"


def run_json_key(run_id: str) -> str:
    return f"runs/{run_id}/run.json"


class RunScheduler:
    """Runs one pipeline under one run id, writing its state to ``runs/<id>/run.json``."""

    def __init__(self, spec: PipelineSpec, run_id: str, driver: tuple[str, int] | None = None) -> None:
        self.spec, self.run_id, self.driver = spec, run_id, driver
        self.store: Store = spec.make_store()
        self.stages, problems = plan_stages(spec)
        if problems:  # the CLI validated already; this guards programmatic use
            raise ValueError("; ".join(problems))
        self._lock = threading.Lock()
        self.state: dict[str, Any] = {"run_id": run_id, "pipeline": spec.name, "status": "starting",
                                      "stages": [], "events": [], "output": None, "error": None}

    # -- state --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A snapshot of the run's state (what run.json holds)."""
        with self._lock:
            return copy.deepcopy(self.state)

    def _event(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            self.state["events"].append({"t": round(time.time(), 3), "msg": message})
            del self.state["events"][:-MAX_EVENTS]

    def _update(self, index: int | None = None, **fields: Any) -> None:
        with self._lock:
            target = self.state if index is None else self.state["stages"][index]
            target.update(fields)
            self.state["updated_at"] = time.time()
            snapshot = copy.deepcopy(self.state)
        self.store.write_json(run_json_key(self.run_id), snapshot)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run or resume the pipeline; returns the final state. Raises on failure."""
        lock = RunLock(self.store, self.run_id, self.spec.execution.lock_ttl_s, self.driver)
        lock.acquire()
        started = time.time()
        previous = self.store.read_json(run_json_key(self.run_id)) or {}
        try:
            files = resolve_inputs(self.spec.input.paths, self.spec.s3_options(), self.spec.input.format)
            if not files:
                raise FileNotFoundError(f"no input file matches {self.spec.input.paths}")
            plan = self._plan(files)
            with self._lock:
                self.state.update(status="running", started_at=started, attempt=previous.get("attempt", 0) + 1,
                                  stages=plan, store=self.store.uri, config=redacted_config(self.spec))
            self._event(f"run {self.run_id}: {len(files)} input file(s), {len(plan)} stage(s), "
                        f"attempt {self.state['attempt']}")
            self._update()
            upstream: dict[str, Any] | None = None
            self._artifact: dict[str, Any] | None = None
            index = 0
            while index < len(plan):
                if self._streams(index) and self._committed(plan[index]) is None:
                    indices = chain_from(self, index, plan)
                    upstream = self._run_chain(indices, plan, files, upstream)
                    index = indices[-1] + 1
                    continue
                upstream = self._run_stage(index, plan[index], upstream, self._artifact)
                if index and _emits_artifact(self.stages[index - 1]):
                    # an artifact with no rows (no duplicates, say) is still this stage's artifact
                    made = upstream.get("artifact") or {"files": [], "by_file": False}
                    self._artifact = {"files": [f["key"] for f in made["files"]], "by_file": made["by_file"],
                                      "rows": sum(f["rows"] for f in made["files"])}
                index += 1
            output = write_output(self, upstream, started)
            indexes = self._advance_indexes(upstream, output)
            self._update(status="succeeded", output=output, indexes=indexes,
                         wall_seconds=round(time.time() - started, 3))
            self._event(f"run {self.run_id} succeeded in {time.time() - started:.1f}s")
            return self.status()
        except BaseException as err:
            with self._lock:
                running = [s for s in self.state["stages"] if s["status"] == "running"]
                text = traceback.format_exc()
                # in a chain, the stage that raised noted its name (execute.STAGE_NOTE)
                named = [s for s in running if f"{execute.STAGE_NOTE}{s['name']}\n" in text + "\n"]
                failed = named[:1] or running
                for s in running:
                    if s in failed:
                        s.update(status="failed", error=text)
                    else:
                        s.update(status="stopped", error=None)
            self._update(status="failed", error=f"{type(err).__name__}: {err}",
                         wall_seconds=round(time.time() - started, 3))
            raise
        finally:
            lock.release()

    def _plan(self, files: list[Any]) -> list[dict[str, Any]]:
        upstream = cp.read_fingerprint(files, self.spec.input.model_dump(mode="json"))
        plan = [{"name": "read", "op": "read", "kind": "read", "fingerprint": upstream}]
        self.pins: dict[str, dict[str, Any]] = {}
        self.models: dict[str, StagedModel] = {}
        for stage in self.stages:
            config, info = stage.config.model_dump(mode="json"), stage.operator.describe(stage.config)
            if stage.operator.uses_index:
                # the pinned version is part of the fingerprint: a newer index means new matches
                pin = self.pins[stage.name] = MinhashIndex(self.store, stage.config).pin(self.run_id)
                config = {**config, "_index_version": pin["version"]}
                info = {**info, "index": stage.config.index.name, "index_version": pin["version"],
                        "index_documents": pin["documents"]}
            if model_field(stage.operator):
                # the model's bytes, not its URI, are part of the fingerprint: retraining re-runs scoring
                model = self.models[stage.name] = stage_model(stage.operator, stage.config, self.store,
                                                              self.spec.s3_options())
                config = {**config, model_field(stage.operator): f"sha256:{model.sha256}"}
                info = {**info, **model.info}
            upstream = cp.operator_fingerprint(stage.operator.name, stage.operator.version, config, upstream)
            plan.append({"name": stage.name, "op": stage.operator.name, "kind": stage.operator.kind,
                         "fingerprint": upstream, "info": info})
        for entry in plan:
            entry.update(status="pending", waves_total=None, waves_done=0, rows_in=None, rows_out=None,
                         dropped={}, metrics={}, seconds=None, error=None)
        return plan

    def _advance_indexes(self, last: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
        """Add this run's output documents to each index it used: the run succeeds only then."""
        done: dict[str, Any] = {}
        for stage in self.stages:
            if not stage.operator.uses_index or not stage.config.index.update:
                continue
            index = MinhashIndex(self.store, stage.config)
            body = index.advance(self.run_id, self.pins[stage.name], output["fingerprint"],
                                 [f["key"] for f in last["files"]], self.spec.execution.batch_rows)
            done[stage.config.index.name] = {k: body[k] for k in ("version", "parent", "added", "documents")}
            self._event(f"index {stage.config.index.name}: version {body['version']} "
                        f"({body['added']:,} documents added, {body['documents']:,} in all)")
        return done

    def _streams(self, index: int) -> bool:
        """Whether plan entry ``index`` is the read stage or a map stage (run by jobs/chain.py)."""
        return index == 0 or self.stages[index - 1].operator.kind == "map"

    def _committed(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        return self.store.read_json(f"{cp.stage_prefix(entry['name'], entry['fingerprint'])}/{cp.COMMIT}")

    def _run_stage(self, index: int, entry: dict[str, Any], upstream: dict[str, Any] | None,
                   artifact: dict[str, Any] | None) -> dict[str, Any]:
        name, fp = entry["name"], entry["fingerprint"]
        done = self._committed(entry)
        if done is not None:
            self._update(index, status="cached", waves_total=done["waves"], waves_done=done["waves"],
                         rows_in=done["rows_in"], rows_out=done["rows_out"], dropped=done["dropped"],
                         metrics=done.get("metrics") or {}, seconds=0.0)
            self._event(f"{name}: committed earlier (fingerprint {fp}), skipped")
            return done
        self._update(index, status="running")
        stage = self.stages[index - 1]
        started = time.time()
        if stage.operator.kind == "group":
            result = self._run_whole(index, entry, stage, upstream)
        else:
            result = self._run_fit(index, entry, stage, upstream, artifact)
        return self._commit_stage(index, entry, result, time.time() - started)

    def _commit_stage(self, index: int, entry: dict[str, Any], result: cp.WaveResult, seconds: float,
                      chain: list[str] | None = None) -> dict[str, Any]:
        name = entry["name"]
        stage = None if index == 0 else self.stages[index - 1]
        body = {"stage": name, "op": entry["op"], "kind": entry["kind"], "fingerprint": entry["fingerprint"],
                "config": None if stage is None else stage.config.model_dump(mode="json"),
                **result.to_json(), "waves": entry.get("waves_total") or 1, "seconds": round(seconds, 3),
                **({"chain": chain} if chain else {})}
        body = cp.commit(self.store, f"{cp.stage_prefix(name, entry['fingerprint'])}/{cp.COMMIT}", body)
        self._update(index, status="committed", rows_in=body["rows_in"], rows_out=body["rows_out"],
                     dropped=body["dropped"], metrics=body.get("metrics") or {}, seconds=body["seconds"])
        self._event(f"{name}: committed {body['rows_out']:,} of {body['rows_in']:,} rows "
                    f"in {body['seconds']:.1f}s")
        return body

    def _run_chain(self, indices: list[int], plan: list[dict[str, Any]], files: list[Any],
                   upstream: dict[str, Any] | None) -> dict[str, Any]:
        """Run read/map stages as one chain (jobs/chain.py); returns the last one's commit."""
        names = [plan[i]["name"] for i in indices]
        for i in indices:
            self._update(i, status="running")
        if len(indices) > 1:
            self._event(f"{' -> '.join(names)}: chained, each wave streams through all of them")
        started = time.time()
        results = run_chain(self, indices, plan, files, upstream)
        seconds = time.time() - started
        bodies = [self._commit_stage(i, plan[i], r, seconds, names if len(indices) > 1 else None)
                  for i, r in zip(indices, results)]
        return bodies[-1]

    def output(self, prefix: str) -> execute.FileOutput:
        """Where a stage's task writes its checkpoint files under ``prefix``."""
        return execute.FileOutput(self.store, prefix, self.spec.execution.checkpoint_compression)

    def map_artifact(self, stage: PlannedStage) -> dict[str, Any] | None:
        """What a map stage is given: the index it reads, its model, or the upstream artifact."""
        if stage.operator.uses_index:
            return {"files": self.pins[stage.name]["files"], "by_file": False}
        if stage.name in self.models:  # a model named by URI, copied into the store (jobs/models.py)
            return {"files": [self.models[stage.name].key], "by_file": False}
        return self._artifact if stage.operator.uses_artifact else None

    def _run_waves(self, index: int, entry: dict[str, Any], waves: list[list[str]],
                   run_wave: Any, rows_in: Any) -> cp.WaveResult:
        """Run each wave unless its commit exists for exactly the same inputs."""
        name, fp = entry["name"], entry["fingerprint"]
        results = []
        self._update(index, waves_total=len(waves))  # entry is this stage's state dict
        for w, inputs in enumerate(waves):
            key = f"{cp.wave_prefix(name, fp, w, inputs)}/{cp.COMMIT}"
            existing = self.store.read_json(key)
            if existing is not None:
                results.append(cp.WaveResult.from_json(existing))
                self._event(f"{name}: wave {w + 1}/{len(waves)} committed earlier, skipped")
            else:
                t0 = time.time()
                stats = run_wave(w, inputs)
                result = cp.WaveResult.from_stats(inputs, stats, rows_in(inputs), time.time() - t0)
                results.append(cp.WaveResult.from_json(cp.commit(self.store, key, result.to_json())))
                self._event(f"{name}: wave {w + 1}/{len(waves)} committed ({result.rows_out:,} rows)")
            self._update(index, waves_done=w + 1, rows_out=sum(r.rows_out for r in results))
        return cp.merge(results)

    def _run_whole(self, index: int, entry: dict[str, Any], stage: PlannedStage,
                   upstream: dict[str, Any]) -> cp.WaveResult:
        keys = [f["key"] for f in upstream["files"]]
        ex = self.spec.execution
        # Partitions by what is shuffled, measured on a sample, with room for a sample that
        # saw less than the rest: the phase-2 task holds its partition, sorted, in memory.
        shuffled = shuffle.shuffled_bytes(stage.operator(stage.config), self.store, upstream["files"], ex.batch_rows)
        # at least one partition per CPU, or the group step runs on one core
        partitions = max(execute.cluster_cpus(), math.ceil(SAMPLE_MARGIN * shuffled / (ex.group_partition_mb << 20)))

        def run_wave(w: int, inputs: list[str]) -> list[dict[str, Any]]:
            if not inputs:
                return []
            out = self.output(cp.wave_prefix(entry["name"], entry["fingerprint"], w, inputs))
            index_keys = self.pins[stage.name]["files"] if stage.operator.uses_index else None
            stats = execute.run_group(stage.operator, stage.config, inputs, self.store, out, partitions,
                                      self.spec.execution.batch_rows, stage.resources, index_keys)
            if stage.operator.emits == "artifact":  # the documents pass through unchanged
                stats += cp.passthrough_stats(upstream["files"])
            return stats

        return self._run_waves(index, entry, [keys], run_wave, lambda inputs: upstream["rows_out"])

    def _run_fit(self, index: int, entry: dict[str, Any], stage: PlannedStage, upstream: dict[str, Any],
                 artifact: dict[str, Any] | None) -> cp.WaveResult:
        on_artifact = stage.operator.fit_on == "artifact"
        if on_artifact and artifact is None:
            raise RuntimeError(f"{entry['name']} fits on an upstream artifact, but no earlier stage made one")
        keys = artifact["files"] if on_artifact else [f["key"] for f in upstream["files"]]
        rows = artifact["rows"] if on_artifact else upstream["rows_out"]
        t0 = time.time()
        if stage.operator.rounds is not None and stage.operator(stage.config).use_rounds(rows):
            stats = run_rounds(self, index, entry, stage, keys, rows)
        else:
            self._update(index, waves_total=1)
            out = self.output(cp.stage_prefix(entry["name"], entry["fingerprint"]))
            stats = execute.run_fit(stage.operator, stage.config, keys, self.store,
                                    self.spec.execution.batch_rows, out, stage.resources)
        # Documents pass through a fit stage untouched: its output is its input's files.
        result = cp.WaveResult.from_stats(keys, stats + cp.passthrough_stats(upstream["files"]),
                                          upstream["rows_out"], time.time() - t0)
        self._event(f"{entry['name']}: artifact of {sum(f.rows for f in result.artifact):,} rows "
                    f"in {len(result.artifact)} file(s)")
        return result


def _emits_artifact(stage: PlannedStage) -> bool:
    return stage.operator.kind == "fit" or getattr(stage.operator, "emits", "documents") == "artifact"


def start_actor(spec: PipelineSpec, run_id: str) -> Any:
    """Create the named scheduler actor for ``run_id`` (refused if one is alive)."""
    import ray

    actor_cls = ray.remote(num_cpus=0, max_concurrency=4, max_restarts=0)(RunScheduler)
    return actor_cls.options(name=actor_name(run_id), namespace=ACTOR_NAMESPACE, lifetime="detached",
                             get_if_exists=False).remote(spec, run_id, (socket.gethostname(), os.getpid()))
