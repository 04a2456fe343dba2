"""``tamis submit``: a run as a Ray Job on a cluster, through the Ray Jobs API.

The config is validated here first; nothing reaches the cluster unless it loads. The job
runs ``tamis run`` on the cluster with the config as loaded here (overrides applied, local
paths made absolute) in its working directory, and tamis's packages and the pipeline's
plugins as ``py_modules``: the nodes need only the third-party dependencies. Its submission
id is ``tamis-<run-id>-<n>`` with the run id in the job's metadata, so submitting a run that
is still pending or running attaches to that job instead of starting a second one (and says
so); a run submitted again after it ended gets the next n and resumes from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from jobs.local_ray import SUBMITTED_ENV, code_for_workers
from jobs.nightly import choose_run_id
from jobs.spec import RUN_ID, SHARED_PATHS_HINT
from jobs.pipeline_load import Pipeline, load_pipeline

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
RUN_ID_KEY = "tamis_run_id"


class SubmitError(RuntimeError):
    """The run cannot be submitted; the message says what to fix."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="pipeline YAML (a path or an s3:// URI)")
    parser.add_argument("--address", help=f"the cluster's Jobs API (dashboard) address (default: "
                        f"RAY_API_SERVER_ADDRESS, else RAY_ADDRESS when it is http(s), else {DEFAULT_ADDRESS})")
    parser.add_argument("--run-id", help="run id (default: the pipeline's name; `auto`: as --nightly); the same "
                        "id resumes")
    parser.add_argument("--nightly", action="store_true", help="run id <pipeline>-<YYYY-MM-DD> (UTC date, taken "
                        "when submitting): submitting it again the same night attaches to it")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--wait", action="store_true", help="follow the job's log until it ends; exit with its status")


def run(args: argparse.Namespace) -> int:
    """Validate, submit (or attach), and with ``--wait`` follow the job to its end."""
    pipeline = load_pipeline(args.config, args.set)
    run_id = choose_run_id(args.run_id, pipeline.spec.name, args.nightly)
    if not RUN_ID.fullmatch(run_id):
        raise SubmitError(f"--run-id {run_id!r}: use letters, digits, '.', '_' and '-' only")
    local = pipeline.spec.unshared_local_paths()
    if local:
        raise SubmitError(f"a submitted run reads and writes on the cluster, where these local paths are not "
                          f"this machine's: {', '.join(local)}; {SHARED_PATHS_HINT}")
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or _http(os.environ.get("RAY_ADDRESS"))
    client = _client(address or DEFAULT_ADDRESS)
    mine = [job for job in _list_jobs(client, address) if (job.metadata or {}).get(RUN_ID_KEY) == run_id]
    live = [job for job in mine if not job.status.is_terminal()]
    if live:
        job_id = live[0].submission_id
        print(f"run {run_id} is already {live[0].status.value.lower()} on the cluster as job {job_id}: "
              "attached to it, nothing new submitted")
    else:
        job_id = f"tamis-{run_id}-{len(mine) + 1}"
        _submit(client, entrypoint=shlex.join(["python", "-m", "jobs.cli", "run", "pipeline.yaml", "--run-id", run_id]),
                submission_id=job_id, runtime_env=_runtime_env(pipeline),
                metadata={RUN_ID_KEY: run_id, "config": str(args.config)})
        print(f"submitted run {run_id} as job {job_id} to {address or DEFAULT_ADDRESS}; follow it with "
              f"`ray job logs {job_id} --follow` or `tamis status {run_id} --store {pipeline.spec.store}`")
    if not args.wait:
        return 0
    asyncio.run(_follow(client, job_id))
    status = client.get_job_status(job_id)
    print(f"job {job_id}: {status.value}")
    return 0 if status.value == "SUCCEEDED" else 1


def add_logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id")
    parser.add_argument("--address", help="the cluster's Jobs API address (as for tamis submit)")
    parser.add_argument("--follow", action="store_true", help="keep printing until the job ends; exit with its status")


def logs(args: argparse.Namespace) -> int:
    """The log of the run's latest job on the cluster (``tamis-<run-id>-<n>``, n highest)."""
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or _http(os.environ.get("RAY_ADDRESS"))
    client = _client(address or DEFAULT_ADDRESS)
    mine = [job for job in _list_jobs(client, address) if (job.metadata or {}).get(RUN_ID_KEY) == args.run_id]
    if not mine:
        raise SubmitError(f"no job of run {args.run_id!r} on the cluster at {address or DEFAULT_ADDRESS}: `tamis "
                          "submit` starts one (a `tamis run` logs to its own terminal; `tamis status RUN --store ...` "
                          "reads any run's progress from the store)")
    job = max(mine, key=lambda j: (j.start_time or 0, j.submission_id))
    print(f"job {job.submission_id} of run {args.run_id} ({job.status.value.lower()}):", file=sys.stderr)
    if not args.follow:
        sys.stdout.write(client.get_job_logs(job.submission_id))
        return 0
    asyncio.run(_follow(client, job.submission_id))
    status = client.get_job_status(job.submission_id)
    print(f"job {job.submission_id}: {status.value}", file=sys.stderr)
    return 0 if status.value == "SUCCEEDED" else 1


def _submit(client: Any, attempts: int = 30, **job: Any) -> None:
    """``client.submit_job(**job)``, retried while the head's job agent is still starting
    (a head that has just come up answers "No available agent" for some seconds)."""
    for attempt in range(attempts):
        try:
            client.submit_job(**job)
            return
        except RuntimeError as err:
            if "No available agent" not in str(err) or attempt == attempts - 1:
                raise
            log.info("the head's job agent is not up yet; trying again in 2 s")
            time.sleep(2)


def _http(address: str | None) -> str | None:
    return address if address and address.startswith(("http://", "https://")) else None


def _client(address: str) -> Any:
    """A JobSubmissionClient for ``address``, using Ray's auth token where one is at hand."""
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()):
        os.environ["RAY_AUTH_MODE"] = "token"  # Ray's client sends a token only in this mode
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError:
        raise SubmitError(f"the cluster at {address} wants Ray's authentication token and none was found: set "
                          "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token") from None
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise SubmitError(f"no Ray Jobs API answers at {address} ({str(err).splitlines()[0]}): give the head's "
                          "dashboard address, e.g. --address http://HEAD:8265; the head needs the dashboard "
                          "(`ray start --head --include-dashboard true`)") from None


def _list_jobs(client: Any, address: str | None) -> list[Any]:
    from ray.exceptions import AuthenticationError

    try:
        return client.list_jobs()
    except AuthenticationError:
        raise SubmitError(f"the cluster at {address or DEFAULT_ADDRESS} refused Ray's authentication token: set "
                          "RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token") from None


def _runtime_env(pipeline: Pipeline) -> dict[str, Any]:
    """The job's working directory (the config as loaded here) and tamis's code."""
    folder = Path(tempfile.mkdtemp(prefix="tamis-submit-"))
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(pipeline.spec.model_dump(mode="json"), sort_keys=False))
    return {"working_dir": str(folder), "py_modules": code_for_workers(pipeline.spec.plugins)["py_modules"],
            "env_vars": {"RAY_DATA_DISABLE_PROGRESS_BARS": "1", SUBMITTED_ENV: "1"}}


async def _follow(client: Any, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        sys.stdout.write(lines)
        sys.stdout.flush()
