"""Unit tests of the per-run lock (jobs/lock.py) on a local store."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs.lock import RunLock, RunLockedError
from jobs.store import Store

RUN = "demo-run"
TTL = 1.0


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


@pytest.fixture
def locks() -> Iterator[list[RunLock]]:
    """Locks made by a test; every one is released at teardown so no heartbeat lingers."""
    made: list[RunLock] = []
    yield made
    for lock in made:
        lock.release()
        assert lock._thread is None or not lock._thread.is_alive()


def new_lock(store: Store, locks: list[RunLock], ttl_s: float = TTL) -> RunLock:
    lock = RunLock(store, RUN, ttl_s=ttl_s)
    locks.append(lock)
    return lock


def lock_key(generation: int) -> str:
    return f"runs/{RUN}/locks/{generation:08d}.json"


def plant(store: Store, **changes: Any) -> None:
    """Write generation 1 by hand, as another driver would have."""
    body = {"owner": "someone-else", "host": socket.gethostname(), "pid": os.getpid(),
            "heartbeat": time.time(), "released": False}
    body.update(changes)
    assert store.create_json(lock_key(1), body)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: the pid no longer names a process
    return proc.pid


def test_acquire_writes_generation_one(store: Store, locks: list[RunLock]) -> None:
    lock = new_lock(store, locks)
    lock.acquire()
    assert lock.key == lock_key(1)
    body = store.read_json(lock_key(1))
    assert body["owner"] == lock.owner
    assert body["pid"] == os.getpid()
    assert body["host"] == socket.gethostname()
    assert body["released"] is False


def test_second_lock_is_refused_naming_run_and_status_command(store: Store,
                                                              locks: list[RunLock]) -> None:
    new_lock(store, locks).acquire()
    with pytest.raises(RunLockedError) as info:
        new_lock(store, locks).acquire()
    message = str(info.value)
    assert repr(RUN) in message
    assert f"tamis status {RUN}" in message
    assert str(os.getpid()) in message
    assert store.list(f"runs/{RUN}/locks") == [lock_key(1)]


def test_other_runs_are_independent(store: Store, locks: list[RunLock]) -> None:
    new_lock(store, locks).acquire()
    other = RunLock(store, "another-run", ttl_s=TTL)
    locks.append(other)
    other.acquire()
    assert other.key == "runs/another-run/locks/00000001.json"


def test_release_then_a_new_lock_takes_generation_two(store: Store, locks: list[RunLock]) -> None:
    first = new_lock(store, locks)
    first.acquire()
    first.release()
    assert first.key is None
    assert store.read_json(lock_key(1))["released"] is True
    second = new_lock(store, locks)
    second.acquire()
    assert second.key == lock_key(2)
    assert store.exists(lock_key(2))
    assert store.read_json(lock_key(2))["owner"] == second.owner
    first.release()  # releasing twice is a no-op and does not touch the new lock
    assert store.read_json(lock_key(2))["released"] is False


def test_heartbeat_refreshes_the_lock(store: Store, locks: list[RunLock]) -> None:
    lock = new_lock(store, locks, ttl_s=0.2)  # beats every 0.05 s
    lock.acquire()
    first = store.read_json(lock_key(1))["heartbeat"]
    deadline = time.time() + 2.0
    while store.read_json(lock_key(1))["heartbeat"] == first and time.time() < deadline:
        time.sleep(0.02)
    assert store.read_json(lock_key(1))["heartbeat"] > first
    lock.release()
    assert not lock._thread.is_alive()
    assert store.read_json(lock_key(1))["released"] is True


def test_lock_of_a_dead_local_process_is_taken_over_at_once(store: Store,
                                                             locks: list[RunLock]) -> None:
    plant(store, pid=dead_pid())  # fresh heartbeat, but its process is gone
    lock = new_lock(store, locks, ttl_s=3600.0)
    lock.acquire()
    assert lock.key == lock_key(2)


def test_stale_heartbeat_from_another_host_is_taken_over(store: Store, locks: list[RunLock]) -> None:
    plant(store, host="other-host", pid=1, heartbeat=time.time() - 1000)
    lock = new_lock(store, locks)
    lock.acquire()
    assert lock.key == lock_key(2)


def test_fresh_lock_from_another_host_is_refused(store: Store, locks: list[RunLock]) -> None:
    plant(store, host="other-host", pid=dead_pid())  # pid says nothing about another host
    with pytest.raises(RunLockedError) as info:
        new_lock(store, locks, ttl_s=60.0).acquire()
    assert "other-host" in str(info.value)
    assert store.list(f"runs/{RUN}/locks") == [lock_key(1)]


def test_released_lock_of_another_host_is_taken_over(store: Store, locks: list[RunLock]) -> None:
    plant(store, host="other-host", released=True)
    lock = new_lock(store, locks)
    lock.acquire()
    assert lock.key == lock_key(2)


def test_losing_the_race_for_a_generation_is_refused(store: Store, locks: list[RunLock],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lock = new_lock(store, locks)
    # Another driver creates generation 1 between our listing and our conditional put.
    def list_then_lose_the_race(prefix: str) -> list[str]:
        plant(store)
        return []  # what the listing saw a moment earlier

    monkeypatch.setattr(store, "list", list_then_lose_the_race)
    with pytest.raises(RunLockedError, match="same moment"):
        lock.acquire()
    assert lock.key is None
    assert store.read_json(lock_key(1))["owner"] == "someone-else"


def test_orphaned_scheduler_is_waited_for_then_taken_over(store: Store, locks: list[RunLock]) -> None:
    """A SIGKILLed local driver: its scheduler outlives it by a moment; the rerun waits, not fails."""
    scheduler = subprocess.Popen(["sleep", "1.5"])
    reaper = threading.Thread(target=scheduler.wait)  # a zombie would still look alive
    reaper.start()
    plant(store, pid=scheduler.pid, driver_host=socket.gethostname(), driver_pid=dead_pid())
    started = time.time()
    try:
        new_lock(store, locks, ttl_s=30).acquire()
    finally:
        reaper.join()
    assert time.time() - started >= 1.0
    assert store.exists(lock_key(2))


def test_live_scheduler_with_live_driver_is_refused_at_once(store: Store, locks: list[RunLock]) -> None:
    plant(store, driver_host=socket.gethostname(), driver_pid=os.getpid())
    started = time.time()
    with pytest.raises(RunLockedError):
        new_lock(store, locks, ttl_s=30).acquire()
    assert time.time() - started < 5
