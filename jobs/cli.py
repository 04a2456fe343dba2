"""`tamis run | submit | validate | status | show | diff | explain | report | up | down | operators |
train-classifier`: the command line."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from typing import Any

from jobs import inspect_commands, local_ray, report, submit, train
from jobs.nightly import choose_run_id
from jobs.models import ModelFileError
from jobs.progress import StageBars
from jobs.spec import DEFAULT_STORE, RUN_ID, SHARED_PATHS_HINT, ExecutionSpec, SpecError
from jobs.pipeline_load import load_pipeline

log = logging.getLogger("tamis")
STOPPED_ON_REQUEST = 4
"""`tamis run`'s exit code when `tamis stop` stopped the run (committed waves kept; rerun resumes)."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # plugins next to the config import as with `python -m`
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        return {"run": cmd_run, "validate": cmd_validate, "status": cmd_status, "operators": cmd_operators,
                "up": cmd_up, "down": cmd_down, "train-classifier": train.run,
                "show": inspect_commands.run_show, "diff": inspect_commands.run_diff,
                "explain": inspect_commands.run_explain, "submit": submit.run, "logs": submit.logs,
                "stop": cmd_stop, "gc": cmd_gc, "report": cmd_report}[args.command](args)
    except (SpecError, train.TrainingError, ModelFileError, local_ray.LocalRayError, submit.SubmitError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The ``tamis`` command line (also what tests check cluster/ entrypoints against)."""
    parser = argparse.ArgumentParser(prog="tamis", description="Curate LLM pretraining text on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run or resume a pipeline")
    run.add_argument("config")
    run.add_argument("--run-id", help="run id (default: the pipeline's name; `auto`: as --nightly); the same id "
                     "resumes")
    run.add_argument("--nightly", action="store_true", help="run id <pipeline>-<YYYY-MM-DD> (UTC date): running "
                     "it again the same night resumes it")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a config value, e.g. stages.1.config.x=1 (repeatable)")
    run.add_argument("--address", help="Ray cluster address, or `local` for a Ray of this run's own "
                     "(default: RAY_ADDRESS, else a Ray running on this machine, e.g. `tamis up`'s, else a local Ray)")
    run.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all)")
    run.add_argument("--until", metavar="STAGE", help="stop after this stage commits (no output); a later run "
                     "without it goes on from there")
    run.add_argument("--sample", type=float, metavar="FRACTION", help="read only this share of the documents, "
                     "chosen by id hash (the same ones every time), as run <run-id>.sample-<FRACTION>")
    run.add_argument("--sample-seed", type=int, default=0, help="another seed draws another sample (default 0)")
    run.add_argument("-v", "--verbose", action="store_true", help="show Ray's own logs and progress bars")
    run.add_argument("--no-report", action="store_true", help="do not write the HTML run report "
                     "(runs/<run-id>/report.html in the store) when the run succeeds")

    validate = sub.add_parser("validate", help="check a config without starting Ray")
    validate.add_argument("config")
    validate.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")

    status = sub.add_parser("status", help="show a run's stages from the store")
    status.add_argument("run_id")
    _store_arguments(status)

    stop = sub.add_parser("stop", help="ask a running run to stop at its next wave boundary (a later run of the "
                          "same id resumes)")
    stop.add_argument("run_id")
    _store_arguments(stop)

    gc = sub.add_parser("gc", help="delete stage directories and waves no run in the store uses")
    _store_arguments(gc)
    gc.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")

    html = sub.add_parser("report", help="write a run's report as one self-contained HTML file")
    html.add_argument("run_id")
    _store_arguments(html)
    html.add_argument("--out", metavar="FILE", help="where to write it, a path or s3:// URI (default: "
                      "runs/<run-id>/report.html in the store)")

    up = sub.add_parser("up", help="start a local Ray that later runs on this machine attach to")
    up.add_argument("--num-cpus", type=int, help="CPUs it offers (default: all)")
    up.add_argument("--port", type=int, default=local_ray.DEFAULT_PORT, help="its GCS port")
    sub.add_parser("down", help="stop the Ray `tamis up` started")

    ops = sub.add_parser("operators", help="list operators, or describe one")
    ops.add_argument("name", nargs="?")
    inspect_commands.add_commands(sub)  # show, diff, explain

    train.add_arguments(sub.add_parser("train-classifier", help="train a model for the classifier_score operator"))
    submit.add_arguments(sub.add_parser("submit", help="run a pipeline as a Ray Job on a cluster (Jobs API)"))
    submit.add_logs_arguments(sub.add_parser("logs", help="print (or --follow) the log of a submitted run's latest job"))
    return parser


def cmd_validate(args: argparse.Namespace) -> int:
    pipeline = load_pipeline(args.config, args.set)
    names = " -> ".join(["read"] + [s.name for s in pipeline.stages] + ["write"])
    print(f"{args.config}: ok\nstages: {names}")
    return 0


def cmd_operators(args: argparse.Namespace) -> int:
    from operators.registry import UnknownOperatorError

    try:
        print(report.render_operator(args.name) if args.name else report.render_operators())
    except UnknownOperatorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--store URI`` or ``--config CONFIG``: the store of a command that reads runs."""
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"store URI (default {DEFAULT_STORE})")
    parser.add_argument("--config", help="take the store (and its options) from this config")


def _store_of(args: argparse.Namespace) -> tuple[Any, ExecutionSpec]:
    """The store ``--store`` or ``--config`` names, and the execution settings (the config's,
    else the defaults)."""
    from jobs.store import Store

    if args.config:
        spec = load_pipeline(args.config, check_io=False).spec
        return spec.make_store(), spec.execution
    return Store(args.store), ExecutionSpec()


def cmd_status(args: argparse.Namespace) -> int:
    from jobs.checkpoint import run_json_key
    from jobs.stage_rows import list_runs

    store, _ = _store_of(args)
    state = store.read_json(run_json_key(args.run_id))
    if state is None:
        print(f"error: no run {args.run_id!r} in {store.uri} (runs there: {', '.join(list_runs(store)) or 'none'})",
              file=sys.stderr)
        return 2
    print(report.render_status(state))
    return 0 if state.get("status") != "failed" else 1


def cmd_stop(args: argparse.Namespace) -> int:
    from jobs.stop_request import request_stop

    store, _ = _store_of(args)
    try:
        request_stop(store, args.run_id)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"asked run {args.run_id} to stop at its next wave boundary; `tamis status {args.run_id} --store "
          f"{store.uri}` shows when it has")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from jobs import gc

    store, execution = _store_of(args)
    try:
        print(gc.render(gc.collect(store, args.dry_run, execution.lock_ttl_s), args.dry_run))
    except gc.StoreInUseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from jobs.html_report import write_report
    from jobs.stage_rows import InspectError

    store, _ = _store_of(args)
    try:
        print(f"report: {write_report(store, args.run_id, args.out)}")
    except InspectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    print(local_ray.up(args.num_cpus, args.port))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    print(local_ray.down())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import ray

    from jobs.lock import RunLockedError
    from jobs.scheduler import actor_name, stages_until, start_actor

    if args.sample is not None and not 0 < args.sample <= 1:
        print(f"error: --sample {args.sample}: give a fraction above 0 and at most 1, e.g. 0.01", file=sys.stderr)
        return 2
    sampled = [] if args.sample is None else [f"input.sample.fraction={args.sample}",
                                              f"input.sample.seed={args.sample_seed}"]
    pipeline = load_pipeline(args.config, args.set + sampled)
    run_id = choose_run_id(args.run_id, pipeline.spec.name, args.nightly)
    if args.sample is not None and not args.run_id and not args.nightly:  # sample runs never mix with full runs
        run_id += f".sample-{args.sample:g}" + (f"-seed{args.sample_seed}" if args.sample_seed else "")
    if not RUN_ID.fullmatch(run_id):
        print(f"error: --run-id {run_id!r}: use letters, digits, '.', '_' and '-' only", file=sys.stderr)
        return 2
    if args.until:
        try:
            stages_until(pipeline.stages, args.until)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    choice = local_ray.choose(args.address)
    local_ray.prepare_env(choice)
    if not args.verbose:
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    log.info("%s", choice.describe(args.num_cpus))
    ray.init(address=choice.address, num_cpus=args.num_cpus if choice.address == "local" else None,
             log_to_driver=args.verbose, include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=True, runtime_env=local_ray.code_for_workers(pipeline.spec.plugins) if choice.ship_code else None)
    unshared = _local_paths_on_several_nodes(pipeline.spec)
    if unshared:
        print(f"error: {unshared}", file=sys.stderr)
        return 2
    if not _previous_scheduler_gone(run_id):
        print(f"error: run {run_id!r} is already running on this cluster; follow it with "
              f"`tamis status {run_id} --store {pipeline.spec.store}`", file=sys.stderr)
        return 3
    actor = start_actor(pipeline.spec, run_id, args.until)
    try:
        state = _follow(actor, actor.run.remote(), StageBars(quiet=args.verbose))  # -v: Ray Data's own bars
    except RunLockedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except ray.exceptions.ActorDiedError as err:
        if isinstance(err, ray.exceptions.RayTaskError):
            raise  # the scheduler raised it (an actor of a stage died): its cause is in run.json
        _scheduler_lost(pipeline.spec, run_id)
        print(f"error: run {run_id} lost its scheduler (Ray actor {actor_name(run_id)} died: killed, out of memory, "
              f"or its worker or node lost); committed waves are kept: run the same command again to resume",
              file=sys.stderr)
        return 1
    except Exception as err:  # the full traceback is in run.json; show the cause and where
        print(f"error: run {run_id} failed{_failed_stage(actor)}: {root_cause(err)}\nthe stage's traceback: "
              f"`tamis status {run_id} --store {pipeline.spec.store}`", file=sys.stderr)
        return 1
    finally:
        ray.kill(actor)
    print(report.render_summary(state))
    if state.get("status") == "succeeded" and not state.get("nothing_new") and not args.no_report:
        from jobs.html_report import write_after_run

        written = write_after_run(pipeline.spec.make_store(), run_id)  # None: a warning says why
        if written:
            print(f"report:   {written}")
    return STOPPED_ON_REQUEST if state.get("stop_requested") else 0


def _local_paths_on_several_nodes(spec: Any) -> str | None:
    """Why the run must not start: local paths on a cluster of several nodes, where each node
    would read or write its own directory; None when the paths are on S3, the cluster has one
    node, or ``store_options.shared_filesystem`` says every node mounts them."""
    import ray

    local = spec.unshared_local_paths()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive")) if local else 1
    if nodes < 2:
        return None
    return (f"the cluster has {nodes} nodes and these are local paths, a different directory on each "
            f"node: {', '.join(local)}; {SHARED_PATHS_HINT}")


def _previous_scheduler_gone(run_id: str) -> bool:
    """True unless a scheduler for ``run_id`` is alive and still running on this cluster.

    A detached scheduler whose driver died finishes its run and then lingers; it is
    removed here so the run id can be used again.
    """
    import ray

    from jobs.scheduler import ACTOR_NAMESPACE, actor_name

    try:
        old = ray.get_actor(actor_name(run_id), namespace=ACTOR_NAMESPACE)
    except ValueError:
        return True
    try:
        status = ray.get(old.status.remote(), timeout=30)["status"]
    except Exception:  # dead or unresponsive: nothing to follow
        status = "unreachable"
    if status in ("running", "starting"):
        return False
    ray.kill(old)
    return True


def _follow(actor: Any, ref: Any, bars: StageBars | None = None) -> dict[str, Any]:
    """Print the scheduler's events as they come, with a progress bar per running stage on a
    terminal (jobs/progress.py), until the run ends; return its final state."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    bars = bars or StageBars()

    try:
        if not bars.enabled:
            return _poll(actor, ref, bars)
        with logging_redirect_tqdm(loggers=[logging.getLogger()]):  # log lines print above the bars
            return _poll(actor, ref, bars)
    finally:
        bars.close()


def _poll(actor: Any, ref: Any, bars: StageBars) -> dict[str, Any]:
    import ray

    shown = 0
    while True:
        done, _ = ray.wait([ref], timeout=1.0)
        try:
            state = ray.get(actor.status.remote())
        except ray.exceptions.RayActorError:
            state = {"events": [], "stages": []}
        for event in state["events"][shown:]:
            log.info("%s", event["msg"])
        shown = max(shown, len(state["events"]))
        bars.update(state["stages"])
        if done:
            try:
                return ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                from jobs.lock import RunLockedError

                if isinstance(err.cause, RunLockedError):
                    raise err.cause from None
                raise  # Ray's wrapper keeps the remote traceback text root_cause() reads
        time.sleep(0.5)


# pyarrow's exceptions end in Invalid too (ArrowInvalid)
EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Invalid)): (.*)$")
INPUT_NOTE = re.compile(r"^\s*input file: (.+)$", re.MULTILINE)


def _scheduler_lost(spec: Any, run_id: str) -> None:
    """Mark the run failed in its run.json, which its dead scheduler left saying running."""
    from jobs.checkpoint import run_json_key
    from jobs.scheduler import actor_name

    store = spec.make_store()
    state = store.read_json(run_json_key(run_id)) or {"run_id": run_id, "stages": [], "events": []}
    for stage in state.get("stages") or []:
        if stage.get("status") == "running":
            stage["status"] = "stopped"
    state.update(status="failed", error=f"the scheduler actor {actor_name(run_id)} died mid-run",
                 updated_at=time.time())
    store.write_json(run_json_key(run_id), state)


def _failed_stage(actor: Any) -> str:
    """`` at <stage> (stages[i])`` for the stage the scheduler marked failed, or ``""``."""
    import ray

    try:
        state = ray.get(actor.status.remote(), timeout=10)
    except Exception:  # noqa: BLE001 - the actor may be gone with the error; the cause is still printed
        return ""
    failed = [s for s in state.get("stages", []) if s.get("status") == "failed"]
    if not failed:
        return ""
    yaml = f" ({failed[0]['yaml']})" if failed[0].get("yaml") else ""
    return f" at {failed[0]['name']}{yaml}"


def root_cause(err: BaseException) -> str:
    """The innermost error of a chain (Ray wraps a stage's error in its own), on one line,
    with the input file the read stage noted on it when the message does not name it.

    Ray Data keeps an operator's own exception only as text in its wrapper's message, so
    when the chain ends in that wrapper, the first exception line of Ray's text that is
    not one of Ray's own is the cause.
    """
    cause = _innermost(err)
    texts = [str(e) for e in _chain(err)] + [n for e in _chain(err) for n in getattr(e, "__notes__", [])]
    files = [m.group(1).strip() for t in texts for m in INPUT_NOTE.finditer(t)]
    return f"{cause} (input file: {files[0]})" if files and files[0] not in cause else cause


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and its causes, Ray's ``cause`` attribute or Python's ``__cause__``."""
    chain: list[BaseException] = []
    while err is not None and all(err is not e for e in chain):
        chain.append(err)
        inner = getattr(err, "cause", None)
        err = inner if isinstance(inner, BaseException) else err.__cause__
    return chain


def _innermost(err: BaseException) -> str:
    chain = _chain(err)
    innermost = chain[-1]
    if type(innermost).__name__ == "UserCodeException":
        for wrapper in chain:
            for line in str(wrapper).splitlines():
                match = EXCEPTION_LINE.match(line)
                if match and not match.group(1).startswith("ray.") and "UserCodeException" not in line:
                    return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2).strip()}"
    lines = [line for line in str(innermost).strip().splitlines() if line.strip()]
    return f"{type(innermost).__name__}: {lines[0] if lines else ''}"


if __name__ == "__main__":
    sys.exit(main())
