"""Quality families as users run them: a whole ``tamis run`` against the operators alone.

Same documents, same run (devdocs, whole documents unless ``--cut``):

* **in-process**: ``gopher_repetition``, ``gopher_quality``, ``c4_quality`` and
  ``fineweb_quality`` called one after another on ``--batch-rows`` Arrow tables in this
  process (bench/quality.py's ``run_tamis``; the families share each batch's lines and
  words), the process's CPU seconds;
* **pipeline**: ``tamis run`` of ``read -> the four families -> parquet`` on a JSONL copy of
  the documents, a local Ray of ``--num-cpus`` CPUs, a fresh store. CPU is the whole
  process tree's: the command runs as a child of this process, which is made a child
  subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``) so Ray's daemons and workers, orphaned when
  the driver stops them, are reaped here and their CPU counted (``RUSAGE_CHILDREN``). Ray's
  start and stop, the read, every checkpoint and the output are all in it, as users pay them
  (exact, and free: bench/process_usage.py samples the tree, which costs ~7 % of a core and
  misses processes that end between samples; memory is not measured here);
* **datatrove** 0.10.1's four filters in a child process (bench/quality.py's ``CHILD``).

``--repo`` runs the pipeline from another checkout (say a ``git worktree`` of an earlier
commit), so a change is measured against what came before on the same machine in one run.

Usage: ``.venv/bin/python bench/quality_pipeline.py [--docs 4413] [--num-cpus 1]``
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import batches, load_documents, machine, run_datatrove, run_tamis  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ["repetition", "gopher", "c4", "fineweb"]  # bench/quality.py's names, pipeline order
STAGES = ["gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality"]
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (Ray's daemons and workers) become this process's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def reap_all(timeout: float = 60.0) -> None:
    """Wait for every descendant that was reparented here, so its CPU is counted."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.2)
    print("warning: some Ray processes outlived the run; their CPU is not counted", file=sys.stderr)


def run_pipeline(repo: Path, work: Path, data: Path, num_cpus: int, batch_rows: int) -> dict[str, float]:
    """``tamis run`` of the four families from ``repo``: whole-tree CPU and wall seconds."""
    config = {"name": "quality-bench", "store": str(work / "store"),
              "input": {"paths": [str(data)]}, "stages": [{"op": s} for s in STAGES],
              "execution": {"batch_rows": batch_rows}, "output": {"format": "parquet"}}
    path = work / "quality-bench.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(repo), "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(path), "--num-cpus", str(num_cpus)],
                          cwd=repo, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - wall
    reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"tamis run failed ({repo}):\n{done.stderr[-3000:]}")
    stages = json.loads((work / "store" / "runs" / "quality-bench" / "run.json").read_text())["stages"]
    return {"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "wall_s": seconds, "stages": {s["name"]: s.get("seconds") for s in stages}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="at most this many documents")
    parser.add_argument("--cut", type=int, default=0, help="cut documents to this many chars")
    parser.add_argument("--batch-rows", type=int, default=1024, help="rows per batch, both ways")
    parser.add_argument("--num-cpus", type=int, default=1, help="CPUs of the pipeline's local Ray")
    parser.add_argument("--copies", type=int, default=1,
                        help="repeat the documents this many times (new ids) for both tamis sides, to "
                             "see the pipeline's fixed costs amortized; datatrove gets one copy")
    parser.add_argument("--repo", action="append", type=Path,
                        help="checkout to run the pipeline from (repeatable; default this one)")
    parser.add_argument("--datatrove-python", default="/tmp/dtvenv/bin/python")
    parser.add_argument("--reuse-datatrove", metavar="PATH")
    args = parser.parse_args()
    become_subreaper()

    distinct, _, described = load_documents(args.docs, args.cut)
    texts = distinct * args.copies
    n = len(texts)
    if args.copies > 1:
        described += f", {args.copies} copies ({n} docs; datatrove: one copy, per-document rates compared)"
    print(f"input: {described}, {sum(len(t.encode()) for t in texts) / 1e6:.1f} MB of UTF-8")
    print(f"machine: {machine()}")
    _, in_process = run_tamis(batches(texts, args.batch_rows), FAMILIES)
    rows = [("operators in one process, one after another", in_process, None)]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "docs.jsonl"
        with data.open("w", encoding="utf-8") as f:
            for i, text in enumerate(texts):
                f.write(json.dumps({"id": str(i), "text": text}) + "\n")
        for repo in args.repo or [REPO]:
            work = Path(tmp) / f"run-{len(rows)}"
            work.mkdir()
            result = run_pipeline(repo.resolve(), work, data, args.num_cpus, args.batch_rows)
            label = "git " + subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                                            capture_output=True, text=True).stdout.strip()
            rows.append((f"`tamis run` ({label}, {args.num_cpus} CPU, whole process tree)", result["cpu_s"], result))
    theirs = run_datatrove(args.datatrove_python, distinct, args.reuse_datatrove)
    theirs["cpu_s"] *= args.copies  # its per-document rate, over the same number of documents
    rows.append((f"datatrove {theirs['version']}, four filters", theirs["cpu_s"], None))

    print("\n| how | CPU s | docs per CPU-second | vs in-process | vs datatrove |")
    print("|---|---:|---:|---:|---:|")
    for label, cpu, _ in rows:
        print(f"| {label} | {cpu:.1f} | {n / cpu:,.1f} | {100 * in_process / cpu:.0f} % "
              f"| {theirs['cpu_s'] / cpu:.1f}x |")
    for label, _, result in rows:
        if result:
            timed = ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items() if v is not None)
            print(f"\n{label}: wall {result['wall_s']:.1f} s; stage seconds (a chain's stages share one "
                  f"figure): {timed}")


if __name__ == "__main__":
    main()
