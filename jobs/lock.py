"""One writer per run: a lock in the store with a heartbeat.

Locks are generation-numbered objects ``runs/<id>/locks/<n>.json`` created with the store's
conditional put, so of two drivers racing for generation ``n`` exactly one wins. The holder
rewrites its lock every ``ttl/4`` seconds and marks it released when done. A newer driver
may take over (by creating generation ``n+1``) only when the current lock is released, its
heartbeat is older than ``ttl``, or its owner process is gone from this very host (a
SIGKILLed local run can be resumed at once instead of after ``ttl``). When the holder's
driver is gone from this host but its scheduler is still exiting (a local Ray tears down
a moment after its driver dies), the new driver waits up to ``ttl`` for it to go.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from jobs.store import Store

log = logging.getLogger(__name__)


class RunLockedError(RuntimeError):
    """Another live driver holds the run; the message says who and how to proceed."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Acquire with :meth:`acquire`; heartbeats run on a daemon thread until :meth:`release`."""

    def __init__(self, store: Store, run_id: str, ttl_s: float,
                 driver: tuple[str, int] | None = None) -> None:
        self.store, self.run_id, self.ttl_s = store, run_id, ttl_s
        self.driver = driver or (socket.gethostname(), os.getpid())
        self.owner = uuid.uuid4().hex
        self.key: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def prefix(self) -> str:
        return f"runs/{self.run_id}/locks"

    def _body(self, released: bool = False) -> dict[str, Any]:
        return {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
                "driver_host": self.driver[0], "driver_pid": self.driver[1],
                "heartbeat": time.time(), "released": released}

    def _stale(self, lock: dict[str, Any]) -> str | None:
        """Why ``lock`` may be taken over, or None while it is live."""
        if lock.get("released"):
            return "released"
        if lock.get("host") == socket.gethostname() and not _pid_alive(int(lock.get("pid", -1))):
            return f"its process {lock.get('pid')} on this host is gone"
        age = time.time() - float(lock.get("heartbeat", 0))
        if age > self.ttl_s:
            return f"its heartbeat is {age:.0f}s old (ttl {self.ttl_s:.0f}s)"
        return None

    @staticmethod
    def _orphaned(lock: dict[str, Any]) -> bool:
        """The holder runs here and the driver that started it is gone from here."""
        here = socket.gethostname()
        return (lock.get("host") == here and lock.get("driver_host") == here
                and not _pid_alive(int(lock.get("driver_pid", -1))))

    def _current(self) -> str | None:
        """The key of the newest lock generation, if any."""
        keys = [k for k in self.store.list(self.prefix) if k.endswith(".json")]
        return keys[-1] if keys else None

    def holder(self) -> dict[str, Any] | None:
        """The run's current lock while it is live (a run works in the store), else None."""
        current = self._current()
        lock = self.store.read_json(current) if current else None
        return lock if lock is not None and self._stale(lock) is None else None

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLockedError` naming the holder."""
        current = self._current()
        generation = 0
        if current:
            generation = int(current.rsplit("/", 1)[-1].split(".")[0])
            lock = self.store.read_json(current) or {}
            why = self._stale(lock)
            if why is None and self._orphaned(lock):
                log.info("run %s: waiting for the scheduler of a dead driver (pid %s) to exit",
                         self.run_id, lock.get("pid"))
                deadline = time.time() + self.ttl_s
                while why is None and time.time() < deadline:
                    time.sleep(0.5)
                    why = self._stale(self.store.read_json(current) or {})
            if why is None:
                age = time.time() - float(lock.get("heartbeat", 0))
                raise RunLockedError(
                    f"run {self.run_id!r} is already being run by process {lock.get('pid')} on "
                    f"{lock.get('host')} (heartbeat {age:.0f}s ago). Follow it with `tamis status "
                    f"{self.run_id} --store {self.store.uri}`, or pick another --run-id. If that process is really gone, the "
                    f"lock expires {self.ttl_s:.0f}s after its last heartbeat.")
            log.info("taking over run %s lock (%s)", self.run_id, why)
        key = f"{self.prefix}/{generation + 1:08d}.json"
        if not self.store.create_json(key, self._body()):
            raise RunLockedError(f"run {self.run_id!r} was locked by another driver at the same moment")
        self.key = key
        self._thread = threading.Thread(target=self._beat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            try:
                self.store.write_json(self.key, self._body())
            except Exception:  # a missed heartbeat is not fatal; the next one retries
                log.warning("run lock heartbeat failed", exc_info=True)

    def release(self) -> None:
        if self.key is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.write_json(self.key, self._body(released=True))
        self.key = None
