"""Mixing end to end: ``tamis run`` of ``mix`` (tokens, plan, sample, shuffle, output) against
pandas reading the same shards, sampling per group and phase, shuffling and writing Parquet.

``bench/mix.py`` times the operators in one process on batches already in memory; this times
what a user runs. ``--docs`` documents (devdocs texts replicated, each copy its own id,
sources by a hash of the id: about 60 / 25 / 15 %) are written as ``--shards`` Parquet files;
then, each in a fresh interpreter whose process tree's CPU seconds and peak memory are sampled
(``bench/process_usage.py``; for tamis that includes Ray's processes, whose start is in the
figure too):

* tamis: a local Ray of ``--cores`` CPUs, ``mix`` with the bytes-per-token estimate, a
  2-phase mix (main: weights 0.6 / 0.25 / 0.15 of half the tokens; anneal: 0.2 / 0.3 / 0.5 of a
  tenth), shuffled (``mix.shuffle``), the output split by ``mix_phase``;
* pandas: ``read_parquet`` of the shards, tokens as UTF-8 bytes // 4, per phase the same
  targets (``operators.mixing.policy``), ``DataFrame.sample(frac, replace=frac > 1)`` per
  group, one ``sample(frac=1)`` shuffle, ``to_parquet`` per phase. It holds the corpus in
  memory; tamis streams it.

Documents per CPU-second of each, and their ratio, are printed; per stage seconds of the
tamis run too.

Usage: ``.venv/bin/python bench/mix_pipeline.py [--docs 200000] [--cores 2]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devdocs import DEVDOCS  # noqa: E402
from process_usage import measured  # noqa: E402

PHASES = {"main": ({"web": 0.6, "code": 0.25, "books": 0.15}, 0.5),
          "anneal": ({"web": 0.2, "code": 0.3, "books": 0.5}, 0.1)}
BYTES_PER_TOKEN = 4.0


def write_corpus(folder: Path, docs: int, shards: int) -> int:
    """``docs`` replicated devdocs documents as ``shards`` Parquet files; their UTF-8 bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mix import SOURCES, base_texts
    from operators.hashing import string_hashes

    texts = base_texts()
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-docs // shards)
    size = 0
    for n in range(shards):
        idx = np.arange(n * per, min((n + 1) * per, docs))
        ids = pa.array([f"d{i}" for i in idx])
        h = string_hashes(ids) % np.uint64(100)
        text = pa.array([texts[i % len(texts)] for i in idx], pa.large_string())
        size += text.nbytes
        pq.write_table(pa.table({"id": ids, "text": text,
                                 "source": pa.array(SOURCES[np.where(h < 60, 0, np.where(h < 85, 1, 2))])}),
                       folder / f"part-{n:05d}.parquet")
    return size


def run_tamis(corpus: str, store: str, budget: float, cores: int, seed: int) -> dict[str, Any]:
    import logging

    import ray
    import yaml

    from jobs.scheduler import RunScheduler
    from jobs.pipeline_load import load_pipeline

    raw = {"name": "mix_bench", "store": store,
           "input": {"paths": [f"{corpus}/part-*.parquet"], "format": "parquet"},
           "stages": [{"op": "mix", "config": {
               "group_by": "source", "tokens": {"estimate": "bytes_per_token", "value": BYTES_PER_TOKEN},
               "budget_tokens": budget * 0.6, "policy": "weights", "weights": PHASES["main"][0], "seed": seed,
               "phases": [{"name": name, "budget_tokens": fraction * budget, "weights": weights}
                          for name, (weights, fraction) in PHASES.items()]}}],
           "output": {"format": "parquet", "split_by": "mix_phase"}}
    config = Path(store) / "mix.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray").setLevel(logging.WARNING)
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, address="local")
    try:
        state = RunScheduler(load_pipeline(str(config)).spec, "bench").run()
    finally:
        ray.shutdown()
    return {"wall_s": time.perf_counter() - started, "status": state["status"],
            "stages": {s["name"]: s.get("seconds") for s in state["stages"]}}


def run_pandas(corpus: str, out: str, budget: float, seed: int) -> dict[str, Any]:
    import pandas as pd

    from operators.mixing.policy import plan_targets, policy_shares

    started = time.perf_counter()
    frame = pd.concat([pd.read_parquet(p) for p in sorted(Path(corpus).glob("part-*.parquet"))], ignore_index=True)
    frame["mix_tokens"] = frame["text"].str.encode("utf-8").str.len() // int(BYTES_PER_TOKEN)
    available = frame.groupby("source")["mix_tokens"].sum().astype(float).to_dict()
    rows = {}
    for phase, (weights, fraction) in PHASES.items():
        targets = plan_targets(available, policy_shares(available, "weights", weights), fraction * budget, 4.0)
        parts = []
        for source, group in frame.groupby("source"):
            frac = targets[source].target / available[source]
            parts.append(group.sample(frac=frac, replace=frac > 1, random_state=seed))
        mixed = pd.concat(parts).sample(frac=1.0, random_state=seed)  # the shuffle across groups
        Path(out, phase).mkdir(parents=True, exist_ok=True)
        mixed.to_parquet(Path(out, phase, "part-00000.parquet"), index=False)
        rows[phase] = len(mixed)
    return {"wall_s": time.perf_counter() - started, "rows_out": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workdir", default="/tmp/mix_pipeline")
    parser.add_argument("--skip-plain", action="store_true",
                        help="tamis only: pandas holds the corpus (about 7 bytes per byte of text)")
    args = parser.parse_args()
    if not DEVDOCS.exists():
        sys.exit(f"{DEVDOCS} is absent")
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    size = write_corpus(work / "corpus", args.docs, args.shards)
    budget = size / BYTES_PER_TOKEN  # every token once; the phases take 0.5 and 0.1 of it
    print(f"{args.docs:,} documents, {size / 2**30:.2f} GiB of text in {args.shards} Parquet shards; "
          f"{args.cores} cores; load average before {os.getloadavg()[0]:.2f}")
    ours, ours_use = measured(run_tamis, str(work / "corpus"), str(work / "store"), budget, args.cores, args.seed)
    print(f"tamis run: {ours['status']}, {ours['wall_s']:.1f} s wall (Ray's start included), "
          f"{ours_use['cpu_s']:.1f} CPU s, peak {ours_use['peak_mb']:,.0f} MB (process tree), "
          f"{ours_use['peak_process_mb']:,.0f} MB (largest process); "
          f"{args.docs / ours_use['cpu_s']:,.0f} docs per CPU-s")
    print("  stages: " + ", ".join(f"{name} {s:.1f} s" for name, s in ours["stages"].items() if s is not None))
    if args.skip_plain:
        return
    plain, plain_use = measured(run_pandas, str(work / "corpus"), str(work / "pandas"), budget, args.seed)
    print(f"pandas: {plain['wall_s']:.1f} s wall, {plain_use['cpu_s']:.1f} CPU s, peak {plain_use['peak_mb']:,.0f} MB; "
          f"{args.docs / plain_use['cpu_s']:,.0f} docs per CPU-s; rows {plain['rows_out']}")
    print(f"tamis / pandas, documents per CPU-second: {plain_use['cpu_s'] / ours_use['cpu_s']:.2f}x; "
          f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
