"""Which Ray a `tamis run` uses, and `tamis up` / `tamis down`, which keep one running.

Starting a local Ray costs about 10 s of every run on a laptop (tens of seconds of a small
run's CPU). `tamis up` starts one with `ray start --head` on loopback and leaves it running;
`tamis run` without `--address` or `RAY_ADDRESS` then finds it (the address Ray's own
`ray start` records, checked against the running GCS processes) and attaches instead of
starting its own, so a rerun costs what its changed stages cost. A Ray started with a plain
`ray start --head` is found the same way.

Token authentication: Ray 2.60 turns it on for a new local cluster and warns about it on
every start and connect unless ``RAY_AUTH_MODE`` is set. For a Ray that tamis starts
(a local one, or `tamis up`'s) tamis sets ``RAY_AUTH_MODE=token`` itself: authentication
stays on, the warning goes. A cluster tamis did not start keeps Ray's own behaviour.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tamis")

AUTH_MODE = "RAY_AUTH_MODE"
UP_MARKER = "tamis_up.json"
"""Written by `tamis up` into Ray's temp directory beside Ray's own ``ray_current_cluster``."""
DEFAULT_PORT = 6380
"""`tamis up`'s GCS port: one above Ray's default, so it does not take a `ray start`'s port."""


class LocalRayError(RuntimeError):
    """`tamis up` or `tamis down` cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class RayChoice:
    """The Ray a run connects to.

    Attributes:
        address: ``"local"`` (start a Ray in this process) or a Ray address.
        attached: True when the address is a Ray found running on this machine.
        started_by_tamis: True for a Ray tamis starts or `tamis up` started.
        ship_code: True when workers need tamis's code shipped (another machine's Ray).
    """

    address: str
    attached: bool = False
    started_by_tamis: bool = True
    ship_code: bool = False

    def describe(self, num_cpus: int | None) -> str:
        """The first line of a run's output: which Ray it uses."""
        if self.address == "local":
            cpus = f"{num_cpus} CPUs" if num_cpus else "all CPUs"
            return f"Ray: starting a local Ray ({cpus}); `tamis up` keeps one running between runs"
        if self.attached:
            how = "`tamis up`" if self.started_by_tamis else "`ray start`"
            stop = "`tamis down`" if self.started_by_tamis else "`ray stop`"
            ignored = f"; --num-cpus {num_cpus} is ignored" if num_cpus else ""
            return f"Ray: attached to the Ray at {self.address} started by {how} ({stop} stops it){ignored}"
        return f"Ray: connecting to {self.address}"


SUBMITTED_ENV = "TAMIS_SUBMITTED_JOB"
"""Set in the environment of a run submitted by ``tamis submit``: its code is already shipped."""


def choose(address: str | None) -> RayChoice:
    """The Ray to use: ``address`` (``--address``), else ``RAY_ADDRESS``, else a Ray running
    on this machine, else a new local one. ``local`` always starts a new one."""
    explicit = address or os.environ.get("RAY_ADDRESS") or None
    if explicit == "local":
        return RayChoice("local")
    if explicit:
        # a run submitted as a Ray Job (jobs/submit.py) has its code in the job's runtime env
        return RayChoice(explicit, started_by_tamis=False, ship_code=not os.environ.get(SUBMITTED_ENV))
    running = running_address()
    if running is None:
        return RayChoice("local")
    return RayChoice(running, attached=True, started_by_tamis=_up_marker_address() == running)


def prepare_env(choice: RayChoice) -> None:
    """Set the token-auth mode for a Ray tamis started, unless the user set it."""
    if choice.started_by_tamis and AUTH_MODE not in os.environ:
        os.environ[AUTH_MODE] = "token"  # auth stays on; Ray warns only when the mode is unset
        from ray._raylet import Config

        Config.initialize("")  # Ray read the mode when imported; this process must see it too, as Ray does


def running_address() -> str | None:
    """The address of the Ray last started with `ray start` on this machine, if it still runs."""
    from ray._private import services

    recorded = services.find_bootstrap_address(None)
    if not recorded:
        return None
    return recorded if recorded in services.find_gcs_addresses() else None


def _ray_temp_dir() -> str:
    from ray._common.utils import get_ray_address_file

    return os.path.dirname(get_ray_address_file(None))


def _marker_path() -> str:
    return os.path.join(_ray_temp_dir(), UP_MARKER)


def _up_marker() -> dict[str, Any] | None:
    try:
        with open(_marker_path()) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _up_marker_address() -> str | None:
    marker = _up_marker()
    return marker.get("address") if marker else None


def _ray_cli() -> str:
    """The `ray` script of this interpreter's environment (the same Ray and packages)."""
    beside = os.path.join(os.path.dirname(sys.executable), "ray")
    return beside if os.path.exists(beside) else (shutil.which("ray") or "ray")


def up(num_cpus: int | None, port: int = DEFAULT_PORT) -> str:
    """Start a Ray head on loopback for later runs to attach to; return what was done.

    Raises:
        LocalRayError: ``ray start`` failed (its last output lines are in the message).
    """
    running = running_address()
    if running:
        by = "`tamis up`" if _up_marker_address() == running else "`ray start`"
        return f"Ray is already running at {running} (started by {by}); `tamis run` uses it"
    env = dict(os.environ)
    if AUTH_MODE not in env:
        env[AUTH_MODE] = "token"
        # A token must exist before `ray start` in token mode; this creates ~/.ray/auth_token once.
        _call([_ray_cli(), "get-auth-token", "--generate"], env, "ray get-auth-token --generate")
    cmd = [_ray_cli(), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
           "--include-dashboard", "false", "--disable-usage-stats"]
    if num_cpus:
        cmd += ["--num-cpus", str(num_cpus)]
    _call(cmd, env, "ray start")
    address = running_address() or f"127.0.0.1:{port}"
    with open(_marker_path(), "w") as f:
        json.dump({"address": address, "num_cpus": num_cpus, "auth_mode": env[AUTH_MODE]}, f)
    cpus = f"{num_cpus} CPUs" if num_cpus else "all CPUs"
    return f"Ray is up at {address} ({cpus}); `tamis run` on this machine uses it until `tamis down`"


def down() -> str:
    """Stop the Ray `tamis up` started; return what was done.

    Raises:
        LocalRayError: the running Ray was not started by `tamis up`, or ``ray stop`` failed.
    """
    running = running_address()
    marker = _up_marker_address()
    if running and running != marker:
        raise LocalRayError(f"the Ray at {running} was not started by `tamis up`; stop it with `ray stop`")
    if not running:
        _forget_marker()
        return "no Ray started by `tamis up` is running"
    # `ray stop` stops every Ray of this user on the machine; the one here is tamis up's.
    _call([_ray_cli(), "stop"], dict(os.environ), "ray stop")
    _forget_marker()
    return f"stopped the Ray at {running}"


def _forget_marker() -> None:
    try:
        os.remove(_marker_path())
    except FileNotFoundError:
        pass


def _call(cmd: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise LocalRayError(f"{what} failed (exit {done.returncode}): {tail}")


def code_for_workers(plugins: list[str]) -> dict[str, Any]:
    """A runtime env shipping tamis's packages and the pipeline's ``plugins`` (their
    top-level modules) to a cluster's workers, so the cluster needs only the third-party
    dependencies installed."""
    import importlib

    import jobs
    import operators

    modules = [jobs, operators]
    for name in plugins:
        top = importlib.import_module(name.split(".")[0])
        if top not in modules:
            modules.append(top)
    # as paths, not module objects: Ray deep-copies the runtime env when it merges a job's
    # with the driver's (a run submitted as a Ray Job), and modules cannot be copied
    return {"py_modules": [os.path.dirname(m.__file__) if os.path.basename(m.__file__) == "__init__.py"
                           else m.__file__ for m in modules]}
