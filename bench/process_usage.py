"""Peak memory and CPU time of a function run in a fresh interpreter (bench/neardup.py).

``measured`` runs the function in a child process (multiprocessing spawn) so that its memory
is its own: peak memory is the highest sampled sum of PSS over the child's process tree (for
a child that starts Ray, that includes Ray's GCS, raylet and workers), the peak of any one Ray
worker process (``ray::*``) and of any one process, and CPU seconds are the tree's
user+system time, all sampled every 0.5 s. The function must be importable by the
child (module level, in the main module or a module on ``sys.path``).

Sampling is not free: reading ``smaps_rollup`` of a local Ray's 12 processes takes about
35 ms of CPU, so sampling every 0.2 s took about 17% of a core from the measured run (a
100k near-dup run: 17.9 s sampled, 14.0-14.3 s alone). Every 0.5 s costs about 7%; a
worker's memory peaks over whole tasks, which last longer than that.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import threading
from typing import Any, Callable


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree(root: int) -> list[int]:
    kids, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


class TreeSampler(threading.Thread):
    """Samples the PSS sum and CPU time of this process and its descendants."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak_kb, self.cpu = interval, 0, {}
        self.pid_peak_kb: dict[int, int] = {}  # each process's own peak: a worker's memory
        self.names: dict[int, str] = {}
        self._halt = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        total = 0
        for pid in _tree(os.getpid()):
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    pss = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
                total += pss
                self.pid_peak_kb[pid] = max(self.pid_peak_kb.get(pid, 0), pss)
                if pid not in self.names:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        self.names[pid] = f.read().split(b"\0")[0].decode(errors="replace")
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / self._tick
            except (OSError, StopIteration, IndexError, ValueError):
                continue
        self.peak_kb = max(self.peak_kb, total)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, float]:
        self.sample()
        self._halt.set()
        self.join()
        me = os.times()
        self.cpu[os.getpid()] = me.user + me.system
        # Ray names its worker processes "ray::<task or actor>"; GCS, raylet and the dashboard
        # are fixed costs of the cluster, not of the work
        workers = [kb for pid, kb in self.pid_peak_kb.items() if self.names.get(pid, "").startswith("ray::")]
        return {"peak_mb": round(self.peak_kb / 1024, 1), "cpu_s": round(sum(self.cpu.values()), 2),
                "peak_rss_self_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "peak_worker_mb": round(max(workers, default=0) / 1024, 1),
                "peak_process_mb": round(max(self.pid_peak_kb.values(), default=0) / 1024, 1)}


def _child(queue: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    sampler = TreeSampler()
    sampler.start()
    try:
        result = fn(*args, **kwargs)
        queue.put(("ok", result, sampler.stop()))
    except BaseException as err:  # report, the parent decides
        import traceback

        queue.put(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}", sampler.stop()))


def measured(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, dict[str, float]]:
    """Run ``fn`` in a fresh interpreter; its result and the tree's peak memory and CPU time."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args, kwargs))
    proc.start()
    status, result, usage = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__} failed in its child process:\n{result}")
    return result, usage
