"""The run's life cycle: plan stages, skip committed ones, run the rest, commit, report.

:class:`RunScheduler` is plain Python so tests can drive it in-process, with Ray or, given
another executor, without; the CLI runs it as a named Ray actor (:func:`start_actor`) that
answers :meth:`RunScheduler.status` while :meth:`RunScheduler.run` works. Everything it
knows is in the store: a new scheduler for the same run id rebuilds its position from the
commits (jobs/ledger.py) and resumes.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from jobs import checkpoint as cp
from jobs import execute, file_chain, shuffle
from jobs.chain import chain_from, run_chain
from jobs.input_history import InputHistory
from jobs.checkpoint import Artifact, WaveResult, run_json_key
from jobs.ledger import RunContext, StageCommit, StageEntry, StageKind, StageLedger, Wave
from jobs.lock import RunLock
from jobs.models import StagedModel, model_uri, stage_model
from jobs.nightly import latest_key, write_latest
from jobs.output import write_output
from jobs.output_waves import WaveOutput
from jobs.rounds import run_rounds
from jobs.spec import PipelineSpec, redacted_config
from jobs.pipeline_load import PlannedStage, plan_stages
from jobs.state import PinnedState, StateVersions
from jobs.stop_request import RunStopRequested, StopCheck
from jobs.store import InputFile, resolve_inputs

log = logging.getLogger(__name__)

ACTOR_NAMESPACE = "tamis"
MAX_EVENTS = 500


def actor_name(run_id: str) -> str:
    return f"scheduler-{run_id}"


class RunScheduler:
    """Runs one pipeline under one run id, writing its state to ``runs/<id>/run.json``.

    ``executor`` runs the work: :mod:`jobs.execute` (Ray Data) unless another object with
    the same functions is given (tests run stages in-process with one).
    """

    def __init__(self, spec: PipelineSpec, run_id: str, driver: tuple[str, int] | None = None,
                 executor: Any = None, until: str | None = None) -> None:
        self.spec, self.run_id, self.driver, self.until = spec, run_id, driver, until
        self.store = spec.make_store()
        stages, problems = plan_stages(spec)
        if problems:  # the CLI validated already; this guards programmatic use
            raise ValueError("; ".join(problems))
        # --until: the later stages are not planned at all (no pinned state, no staged model)
        self.stages = stages[:stages_until(stages, until)] if until else stages
        self.stop_check = StopCheck(self.store, run_id)
        self.ctx = RunContext(spec, self.store, StageLedger(self.store, self, self.stop_check), executor or execute)
        self.pins: dict[str, tuple[StateVersions, PinnedState]] = {}  # by stage name
        self.inputs: tuple[InputHistory, PinnedState, list[InputFile]] | None = None  # input.incremental
        self.models: dict[str, StagedModel] = {}
        self._lock = threading.Lock()
        self.state: dict[str, Any] = {"run_id": run_id, "pipeline": spec.name, "status": "starting",
                                      "stages": [], "events": [], "output": None, "error": None}

    # -- state (the ledger's Progress) ----------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A snapshot of the run's state (what run.json holds)."""
        with self._lock:
            return copy.deepcopy(self.state)

    def event(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            self.state["events"].append({"t": round(time.time(), 3), "msg": message})
            del self.state["events"][:-MAX_EVENTS]

    def stage(self, index: int, **fields: Any) -> None:
        self._update(self.state["stages"][index], fields)

    def _update(self, target: dict[str, Any], fields: dict[str, Any]) -> None:
        with self._lock:
            target.update(fields)
            self.state["updated_at"] = time.time()
            snapshot = copy.deepcopy(self.state)
        self.store.write_json(run_json_key(self.run_id), snapshot)

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run or resume the pipeline; returns the final state. Raises on failure."""
        lock = RunLock(self.store, self.run_id, self.spec.execution.lock_ttl_s, self.driver)
        lock.acquire()
        started = time.time()
        previous = self.store.read_json(run_json_key(self.run_id)) or {}
        self.stop_check.clear()  # a request to an earlier attempt: this one resumes
        if self._done_before(previous):
            lock.release()
            return previous
        try:
            files = resolve_inputs(self.spec.input.paths, self.spec.s3_options(), self.spec.input.format)
            if not files:
                raise FileNotFoundError(f"no input file matches {self.spec.input.paths}")
            files = self._incremental(files)
            if not files:
                return self._nothing_new(started)
            plan = self._plan(files)
            with self._lock:
                self.state.update(status="running", started_at=started, attempt=previous.get("attempt", 0) + 1,
                                  stages=[e.initial_state() for e in plan], store=self.store.uri,
                                  config=redacted_config(self.spec), pins=self._pinned())
            self.event(f"run {self.run_id}: {len(files)} input file(s), {len(plan)} stage(s), "
                       f"attempt {self.state['attempt']}")
            self._update(self.state, {})
            with WaveOutput(self.ctx, self.run_id, plan[-1]) as early:  # shards as the last stage's waves commit
                last = self._run_stages(plan, files)
                if self.until:
                    return self._stopped(started)
                output = write_output(self.ctx, self.run_id, last, self.status()["stages"], started, early)
            states = self._advance_states(last, output)
            if self.inputs is not None:
                history, pin, read = self.inputs
                body = history.advance(self.run_id, pin, output["fingerprint"], read)
                states["inputs"] = {history.name: {k: body[k] for k in ("version", "parent", "added", "documents")}}
                self.event(f"input state {history.name}: version {body['version']} ({body['added']:,} file(s) "
                           f"recorded, {body['documents']:,} in all)")
            self._update(self.state, {"status": "succeeded", "output": output, **states,
                                      "wall_seconds": round(time.time() - started, 3)})
            self.event(f"run {self.run_id} succeeded in {time.time() - started:.1f}s")
            if self.spec.input.incremental is not None and self.inputs is not None:
                pointer = write_latest(self.store, self.status())
                if pointer and pointer["run_id"] != self.run_id:
                    self.event(f"{latest_key(self.spec.name)} stays at the newer run {pointer['run_id']}")
            return self.status()
        except RunStopRequested:
            return self._stop_requested(started)
        except BaseException as err:
            self._mark_failed(traceback.format_exc())
            self._update(self.state, {"status": "failed", "error": f"{type(err).__name__}: {err}",
                                      "wall_seconds": round(time.time() - started, 3)})
            raise
        finally:
            lock.release()

    def _done_before(self, previous: dict[str, Any]) -> bool:
        """An incremental run that succeeded with this config: nothing to redo (its input
        record moved on; `tamis gc` may have deleted the version it read)."""
        if self.spec.input.incremental is None or self.until or previous.get("status") != "succeeded" \
                or previous.get("config") != redacted_config(self.spec):
            return False
        self.event(f"run {self.run_id} succeeded earlier with this config; nothing to do")
        previous["events"] = (previous.get("events") or [])[-MAX_EVENTS + 1:] + self.status()["events"][-1:]
        return True

    def _incremental(self, files: list[InputFile]) -> list[InputFile]:
        """With ``input.incremental``: the files no run recorded (new) or recorded with another
        size or version (changed); all of ``files`` otherwise."""
        incremental = self.spec.input.incremental
        if incremental is None:
            return files
        history = InputHistory(self.store, incremental.state, incremental.compact_segments)
        pin = history.pin(self.run_id)
        split = history.split(files, pin)
        read = split.to_read
        # a sample reads part of each file: recording the files would skip the rest for good
        self.inputs = None if self.spec.input.sample else (history, pin, read)
        with self._lock:
            self.state["input_files"] = {"state": incremental.state, "version": pin.version, **split.describe()}
        self.event(f"input state {incremental.state} (version {pin.version}): {len(split.new)} new, "
                   f"{len(split.changed)} changed, {len(split.unchanged)} unchanged file(s) skipped")
        return read

    def _pinned(self) -> dict[str, int]:
        """The version of each cross-run state this run reads, by its store prefix (`tamis gc`
        keeps their files while the run may still need them)."""
        pins = {versions.prefix: pin.version for versions, pin in self.pins.values()}
        if self.inputs is not None:
            pins[self.inputs[0].versions.prefix] = self.inputs[1].version
        return pins

    def _nothing_new(self, started: float) -> dict[str, Any]:
        """An incremental run that found no new or changed file: it succeeds with no output."""
        self._update(self.state, {"status": "succeeded", "nothing_new": True, "store": self.store.uri,
                                  "config": redacted_config(self.spec), "wall_seconds": round(time.time() - started, 3)})
        self.event(f"run {self.run_id}: nothing new to read (input state {self.spec.input.incremental.state}); "
                   f"no output written")
        return self.status()

    def _stopped(self, started: float) -> dict[str, Any]:
        """The end of a run asked to stop after a stage (``--until``): no output, no state advanced."""
        self._update(self.state, {"status": "stopped", "stopped_after": self.until,
                                  "wall_seconds": round(time.time() - started, 3)})
        self.event(f"run {self.run_id} stopped after {self.until} as asked; run it again without --until "
                   f"to go on from there")
        return self.status()

    def _stop_requested(self, started: float) -> dict[str, Any]:
        """The end of a run `tamis stop` asked to stop: committed waves stay, no output."""
        with self._lock:
            for s in self.state["stages"]:
                if s["status"] == "running":
                    s["status"] = "stopped"
        self._update(self.state, {"status": "stopped", "stopped_after": None, "stop_requested": True,
                                  "wall_seconds": round(time.time() - started, 3)})
        self.event(f"run {self.run_id} stopped at a wave boundary as asked (tamis stop); run it again with the "
                   f"same run id to go on from there")
        return self.status()

    def _mark_failed(self, text: str) -> None:
        """The running stage that raised failed; others running with it (a chain) stopped."""
        with self._lock:
            running = [s for s in self.state["stages"] if s["status"] == "running"]
            # in a chain, the stage that raised noted its name (file_chain.STAGE_NOTE)
            named = [s for s in running if f"{file_chain.STAGE_NOTE}{s['name']}\n" in text + "\n"]
            failed = named[:1] or running
            for s in running:
                if s in failed:
                    s.update(status="failed", error=text)
                else:
                    s.update(status="stopped", error=None)

    def _plan(self, files: list[InputFile]) -> list[StageEntry]:
        """Each stage's fingerprint, chained from the input's; pins cross-run state and stages models."""
        # neither setting changes what a committed read wave holds (duplicate_ids adds later
        # stages; on_corrupt_file: fail commits nothing where skip would differ)
        # (incremental only chooses the files, which are fingerprinted themselves)
        input_config = self.spec.input.model_dump(mode="json", exclude={"duplicate_ids", "on_corrupt_file",
                                                                         "incremental"})
        upstream = cp.read_fingerprint(files, input_config)
        plan = [StageEntry(0, "read", "read", StageKind.READ, upstream)]
        for n, stage in enumerate(self.stages, 1):
            config, info = stage.fingerprint_config(), stage.operator.describe(stage.config)
            state = stage.operator.cross_run_state(stage.config)
            if state is not None:
                # the pinned version is part of the fingerprint: a newer state means new results
                versions = StateVersions(self.store, state)
                pin = versions.pin(self.run_id)
                self.pins[stage.name] = (versions, pin)
                config = {**config, "_state_version": pin.version}
                info = {**info, state.label: state.name, f"{state.label}_version": pin.version,
                        f"{state.label}_documents": pin.documents}
            if stage.operator.model_field and model_uri(stage.operator, stage.config) is not None:
                # the model's bytes, not its URI, are part of the fingerprint: retraining re-runs scoring
                model = self.models[stage.name] = stage_model(stage.operator, stage.config, self.store,
                                                              self.spec.s3_options())
                config = with_path(config, stage.operator.model_field, f"sha256:{model.sha256}")
                info = {**info, **model.info}
            upstream = cp.operator_fingerprint(stage.operator.name, stage.operator.version, config, upstream)
            plan.append(StageEntry(n, stage.name, stage.operator.name, StageKind(stage.operator.kind), upstream,
                                   stage, info))
        return plan

    def _run_stages(self, plan: list[StageEntry], files: list[InputFile]) -> StageCommit:
        """Every stage in order, skipping committed ones; returns the last stage's commit."""
        upstream: StageCommit | None = None
        artifact: Artifact | None = None  # the nearest upstream artifact
        index = 0
        while index < len(plan):
            self.stop_check()
            entry = plan[index]
            commit = self.ctx.ledger.reuse(entry)
            if commit is None and entry.streams:
                chain = chain_from(self.ctx, plan, index)
                commit = run_chain(self.ctx, plan, chain, files, upstream,
                                   {e.index: self._given(e.stage, artifact) for e in chain if e.stage})
                index = chain[-1].index + 1
            else:
                if commit is None:
                    self.stage(index, status="running")
                    started = time.time()
                    result = (self._run_group(entry, upstream) if entry.kind is StageKind.GROUP
                              else self._run_fit(entry, upstream, artifact))
                    commit = self.ctx.ledger.commit_stage(entry, result, time.time() - started)
                if entry.emits_artifact:  # an artifact with no rows (no duplicates, say) is still one
                    artifact = commit.result.made()
                index += 1
            upstream = commit
        assert upstream is not None
        return upstream

    def _given(self, stage: PlannedStage, artifact: Artifact | None) -> Artifact | None:
        """What a map stage is handed: the state it reads, its model, or the upstream artifact."""
        if stage.name in self.pins:
            return Artifact(self.pins[stage.name][1].files)
        if stage.name in self.models:  # a model named by URI, copied into the store (jobs/models.py)
            return Artifact([self.models[stage.name].key])
        return artifact if stage.operator.uses_artifact else None

    def _run_group(self, entry: StageEntry, upstream: StageCommit | None) -> WaveResult:
        stage, ex, executor = entry.stage, self.spec.execution, self.ctx.executor
        assert stage is not None and upstream is not None
        partitions = shuffle.partition_count(stage.operator(stage.config), self.store, upstream.files,
                                             ex.batch_rows, executor.cluster_cpus(), ex.group_partition_mb)
        state_keys = self.pins[stage.name][1].files if stage.name in self.pins else None

        def run(jobs: list[tuple[list[str], list[str]]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
            [(prefixes, inputs)] = jobs  # a group stage is one wave
            if not inputs:
                yield 0, []
                return
            stats = executor.run_group(stage.operator, stage.config, inputs, self.store, self.ctx.output(prefixes[0]),
                                       partitions, ex.batch_rows, stage.resources, state_keys)
            if stage.operator.emits == "artifact":  # the documents pass through unchanged
                stats += cp.passthrough_stats(upstream.files)
            yield 0, stats

        keys = [f.key for f in upstream.files]
        [result] = self.ctx.ledger.run_waves([entry], [Wave(0, keys, upstream.rows_out)], run)
        return result

    def _run_fit(self, entry: StageEntry, upstream: StageCommit | None, artifact: Artifact | None) -> WaveResult:
        stage = entry.stage
        assert stage is not None and upstream is not None
        on_artifact = stage.operator.fit_on == "artifact"
        if on_artifact and artifact is None:
            raise RuntimeError(f"{entry.name} fits on an upstream artifact, but no earlier stage made one")
        keys = artifact.files if on_artifact and artifact else [f.key for f in upstream.files]
        rows = artifact.rows if on_artifact and artifact else upstream.rows_out
        started = time.time()
        if stage.operator.rounds is not None and stage.operator(stage.config).use_rounds(rows):
            stats = run_rounds(self.ctx, entry, keys, rows)
        else:
            self.stage(entry.index, waves_total=1)
            stats = self.ctx.executor.run_fit(stage.operator, stage.config, keys, self.store,
                                              self.spec.execution.batch_rows, self.ctx.output(entry.prefix),
                                              stage.resources)
        # Documents pass through a fit stage untouched: its output is its input's files.
        result = WaveResult.from_stats(keys, stats + cp.passthrough_stats(upstream.files), upstream.rows_out,
                                       time.time() - started)
        self.event(f"{entry.name}: artifact of {sum(f.rows for f in result.artifact):,} rows "
                   f"in {len(result.artifact)} file(s)")
        return result

    def _advance_states(self, last: StageCommit, output: dict[str, Any]) -> dict[str, Any]:
        """Fold this run's output into each cross-run state it read: the run succeeds only then."""
        done: dict[str, dict[str, Any]] = {}
        for stage in self.stages:
            if stage.name not in self.pins:
                continue
            versions, pin = self.pins[stage.name]
            state = versions.state
            if not state.update or state.name in done.get(state.family, {}):
                continue
            body = versions.advance(self.run_id, pin, output["fingerprint"], [f.key for f in last.files],
                                    self.spec.execution.batch_rows, stage.operator, stage.config)
            done.setdefault(state.family, {})[state.name] = {k: body[k] for k in ("version", "parent", "added",
                                                                                  "documents")}
            self.event(f"{state.label} {state.name}: version {body['version']} ({body['added']:,} documents "
                       f"added, {body['documents']:,} in all)")
        return done


def with_path(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """``config`` (a JSON dump) with the field at ``dotted`` set to ``value``; copies, never
    changes ``config``."""
    head, _, rest = dotted.partition(".")
    return {**config, head: with_path(config.get(head) or {}, rest, value) if rest else value}


def stages_until(stages: tuple[PlannedStage, ...] | list[PlannedStage], until: str) -> int:
    """How many planned stages run with ``--until until``: up to the stage of that name, or
    the last part of the composite of that name; 0 for ``read``.

    Raises:
        ValueError: no stage has that name; the message lists the names there are.
    """
    if until == "read":
        return 0
    names = [s.name for s in stages]
    matches = [n for n, name in enumerate(names) if name == until or name.startswith(until + ".")]
    if not matches:
        composites = list(dict.fromkeys(name.split(".")[0] for name in names if "." in name))
        raise ValueError(f"--until {until!r}: no such stage; the stages are read, {', '.join(names)}"
                         + (f" (or a composite's name: {', '.join(composites)})" if composites else ""))
    return matches[-1] + 1


def start_actor(spec: PipelineSpec, run_id: str, until: str | None = None) -> Any:
    """Create the named scheduler actor for ``run_id`` (refused if one is alive), on the
    driver's node: a cluster's worker nodes come and go (spot instances, autoscaling), and a
    lost worker node must cost only the tasks it ran, never the run's scheduler."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_cls = ray.remote(num_cpus=0, max_concurrency=4, max_restarts=0)(RunScheduler)
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return actor_cls.options(name=actor_name(run_id), namespace=ACTOR_NAMESPACE, lifetime="detached",
                             get_if_exists=False, scheduling_strategy=here).remote(
        spec, run_id, (socket.gethostname(), os.getpid()), until=until)
