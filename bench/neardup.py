"""Near-duplicate removal: tamis ``minhash_dedup`` against plain datasketch, on one corpus.

Builds a corpus with planted near duplicates and exact ground truth (bench/neardup_corpus.py),
then, on the same JSONL.gz shards:

* ceiling: read + normalize + word-5-gram shingle sets in one process, no hashing: the floor
  under any shingle-based method written in Python;
* datasketch: ``MinHash(num_perm=128)`` (default SHA-1 hash) over the same shingles,
  ``MinHashLSH(threshold, num_perm)`` per source, documents in id order, greedy: a document
  is removed when ``query`` returns a document kept earlier, else it is inserted and kept.
  Single-threaded, so docs/s per core = docs/s;
* tamis: the pipeline ``minhash_dedup`` -> ``filter`` on a local Ray with ``--cores`` CPUs;
  removed = rejected rows with ``drop_reason == "dedup:minhash"``. Skipped, with a line
  saying so, while the operator is not registered.

Each method runs in a fresh interpreter (multiprocessing spawn) so that its memory is its
own: peak memory is the highest sampled sum of PSS over the child's process tree (for tamis
that includes Ray's GCS, raylet and workers), and CPU seconds are the tree's user+system
time. Both are sampled every 0.5 s (bench/process_usage.py says why). CPU seconds are the figure to compare when other work
shares the machine (the load average is printed): wall-clock rates drop under contention.

    python bench/neardup.py --docs 20000 [--threshold 0.8] [--num-perm N] [--no-verify]
                            [--seed 0] [--cores N] [--corpus DIR] [--keep] [--json OUT]
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(HERE), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import neardup_corpus as nc  # noqa: E402
from neardup_text import NGRAM, shingle_strings, words  # noqa: E402
from neardup_truth import THRESHOLD, GroundTruth, score  # noqa: E402
from process_usage import measured  # noqa: E402

DROP_REASON = "dedup:minhash"


# -- the methods ---------------------------------------------------------------------------
def ceiling(corpus_dir: str | Path, ngram: int = NGRAM) -> tuple[float, dict[str, Any]]:
    """Seconds to read, normalize and shingle every document (no hashing)."""
    t0 = time.perf_counter()
    docs = nc.read_corpus(corpus_dir)
    t1 = time.perf_counter()
    n = 0
    for d in docs:
        n += len(shingle_strings(words(d["text"]), ngram))
    t2 = time.perf_counter()
    return t2 - t0, {"read_s": round(t1 - t0, 3), "normalize_shingle_s": round(t2 - t1, 3), "shingles": n}


def datasketch_baseline(corpus_dir: str | Path, threshold: float = THRESHOLD, num_perm: int = 128,
                        ngram: int = NGRAM) -> tuple[set[str], float, dict[str, Any]]:
    """Plain datasketch, greedy keep-first in id order, per source; (removed ids, seconds, stats)."""
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    docs = sorted(nc.read_corpus(corpus_dir), key=lambda d: d["id"])
    t_read = time.perf_counter() - t0
    t_shingle = t_hash = t_lsh = 0.0
    index: dict[str, MinHashLSH] = {}
    removed: set[str] = set()
    for d in docs:
        a = time.perf_counter()
        shingles = shingle_strings(words(d["text"]), ngram)
        b = time.perf_counter()
        m = MinHash(num_perm=num_perm)
        m.update_batch([s.encode("utf-8") for s in shingles])
        c = time.perf_counter()
        lsh = index.get(d["source"])
        if lsh is None:
            lsh = index[d["source"]] = MinHashLSH(threshold=threshold, num_perm=num_perm)
        if lsh.query(m):
            removed.add(d["id"])
        else:
            lsh.insert(d["id"], m)
        t_lsh += time.perf_counter() - c
        t_shingle += b - a
        t_hash += c - b
    seconds = time.perf_counter() - t0
    return removed, seconds, {"read_s": round(t_read, 3), "normalize_shingle_s": round(t_shingle, 3),
                              "minhash_s": round(t_hash, 3), "lsh_s": round(t_lsh, 3),
                              "lsh_bands_rows": [lsh.b, lsh.r] if index else None}


def tamis_available() -> str | None:
    """None when ``minhash_dedup`` is registered, else why not."""
    try:
        from operators import registry

        registry.get("minhash_dedup")
    except Exception as err:  # unknown operator, or an import error in the new module
        return f"{type(err).__name__}: {err}"
    return None


def run_tamis(corpus_dir: str | Path, store_dir: str | Path, threshold: float = THRESHOLD,
              ngram: int = NGRAM, num_perm: int | None = None, verify: bool = True, *,
              cores: int | None = None, run_id: str = "neardup",
              lsh: dict[str, Any] | None = None, max_hops: int | None = 2) -> tuple[set[str], float, dict[str, Any]]:
    """Run ``minhash_dedup`` + ``filter`` over the corpus shards; (removed ids, seconds, stats).

    Starts a local Ray with ``cores`` CPUs unless one is running (and then stops it). The
    seconds are those of ``RunScheduler.run()`` alone; Ray's start is in the stats.
    """
    import pyarrow.parquet as pq
    import ray
    import yaml

    from jobs.scheduler import RunScheduler
    from jobs.pipeline_load import load_pipeline

    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    dedup: dict[str, Any] = {"threshold": threshold, "ngram": ngram, "verify": verify, "max_hops": max_hops}
    if num_perm is not None:
        dedup["num_perm"] = num_perm
    if lsh:
        dedup["lsh"] = lsh
    raw = {
        "name": run_id,
        "store": str(store_dir),
        "input": {"paths": [str(Path(corpus_dir).resolve() / "part-*.jsonl.gz")], "format": "jsonl",
                  "text_field": "text", "id_field": "id", "source_field": "source"},
        "stages": [{"op": "minhash_dedup", "config": dedup},
                   {"op": "filter", "config": {"rules": [{"keep": "dedup_minhash_keep", "reason": DROP_REASON}]}}],
    }
    config = store_dir / "neardup.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    pipeline = load_pipeline(str(config))
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("ray").setLevel(logging.WARNING)  # Ray Data's per-dataset INFO lines
    started_ray = not ray.is_initialized()
    t0 = time.perf_counter()
    if started_ray:
        ray.init(num_cpus=cores or os.cpu_count(), include_dashboard=False, log_to_driver=False, address="local")
    t1 = time.perf_counter()
    try:
        state = RunScheduler(pipeline.spec, run_id).run()
        seconds = time.perf_counter() - t1
    finally:
        if started_ray:
            ray.shutdown()
    removed: set[str] = set()
    other: dict[str, int] = {}
    for path in sorted(glob.glob(str(store_dir / "stages" / "*" / "wave-*" / "rejected" / "*.parquet"))):
        table = pq.read_table(path, columns=["id", "drop_reason"]).to_pydict()
        for doc_id, reason in zip(table["id"], table["drop_reason"]):
            if reason == DROP_REASON:
                removed.add(doc_id)
            else:
                other[reason] = other.get(reason, 0) + 1
    stages = [{k: v for k, v in s.items() if k in ("name", "status", "seconds", "wall_seconds", "rows_in",
                                                    "rows_out", "rows_dropped", "waves")}
              for s in state.get("stages", [])]
    return removed, seconds, {"ray_init_s": round(t1 - t0, 3), "scheduler_wall_s": state.get("wall_seconds"),
                              "other_drop_reasons": other, "stages": stages, "config": str(config)}


# -- report --------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = "none"
    if shutil.which("nvidia-smi"):
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True)
        gpu = ", ".join(out.stdout.split("\n")).strip(", ") or "none"
    import datasketch

    return {"cores": os.cpu_count(), "cpu_model": model, "memory_gb": round(mem_gb, 1), "gpu": gpu,
            "python": platform.python_version(), "datasketch": datasketch.__version__}


def _row(name: str, n_docs: int, seconds: float, usage: dict[str, float], cores: int,
         scores: dict[str, Any] | None) -> dict[str, Any]:
    row = {"method": name, "seconds": round(seconds, 2), "docs_per_s": round(n_docs / seconds, 1),
           "docs_per_s_per_core": round(n_docs / seconds / cores, 1), "cores": cores,
           "cpu_s": usage["cpu_s"], "docs_per_cpu_s": round(n_docs / usage["cpu_s"], 1) if usage["cpu_s"] else None,
           "peak_mb": usage["peak_mb"], "peak_rss_self_mb": usage["peak_rss_self_mb"],
           "peak_worker_mb": usage.get("peak_worker_mb"), "peak_process_mb": usage.get("peak_process_mb")}
    if scores:
        row.update(scores)
    return row


def render(rows: list[dict[str, Any]]) -> str:
    head = ("method", "P", "R", "F1", "wrongly rm", "wiped", "fmt R", "seconds", "docs/s", "docs/s/core",
            "CPU s", "docs/CPU s", "peak MB", "peak MB/process")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        def g(k: str, fmt: str = "{}") -> str:
            return "" if r.get(k) is None else fmt.format(r[k])
        lines.append("| " + " | ".join((r["method"], g("precision", "{:.4f}"), g("recall", "{:.4f}"),
                                        g("f1", "{:.4f}"), g("wrongly_removed"), g("clusters_wiped_out"),
                                        g("formatting_recall", "{:.4f}"), g("seconds", "{:.2f}"),
                                        g("docs_per_s", "{:,.0f}"), g("docs_per_s_per_core", "{:,.0f}"),
                                        g("cpu_s", "{:.1f}"), g("docs_per_cpu_s", "{:,.0f}"),
                                        g("peak_mb", "{:,.0f}"), g("peak_process_mb", "{:,.0f}"))) + " |")
    return "\n".join(lines)


def _corpus(args: argparse.Namespace) -> tuple[Path, GroundTruth, bool]:
    if args.corpus:
        out = Path(args.corpus)
        truth_path = out / "truth.json"
        if truth_path.exists():
            truth = GroundTruth.from_json(truth_path)
            if truth.stats["docs"] == args.docs and truth.stats["seed"] == args.seed:
                print(f"reusing the corpus in {out}")
                return out, truth, False
    else:
        out = Path(tempfile.mkdtemp(prefix="neardup-corpus-"))
    docs, truth = nc.build_corpus(args.docs, args.seed, args.source)
    nc.write_corpus(docs, truth, out, args.shards)
    return out, truth, not args.corpus and not args.keep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--threshold", type=float, default=THRESHOLD, help="Jaccard threshold of both methods")
    ap.add_argument("--num-perm", type=int, default=None, help="tamis: operator default; datasketch: 128")
    ap.add_argument("--no-verify", action="store_true", help="tamis: skip exact Jaccard verification")
    ap.add_argument("--bands", type=int, nargs=2, metavar=("BANDS", "ROWS"),
                    help="tamis: lsh.bands and lsh.rows (default: the operator's choice)")
    ap.add_argument("--max-hops", type=lambda v: None if v == "any" else int(v), default=2,
                    help="tamis: minhash_dedup max_hops (links from a removed document to its keeper; 'any': no bound)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="CPUs given to Ray")
    ap.add_argument("--corpus", help="build the corpus here, or reuse one built with the same --docs/--seed")
    ap.add_argument("--keep", action="store_true", help="keep the corpus and the tamis store")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--source", default=str(nc.DEFAULT_SOURCE))
    ap.add_argument("--json", metavar="OUT", help="write every figure as JSON")
    ap.add_argument("--skip-datasketch", action="store_true",
                    help="leave out the datasketch baseline (at 1M documents it needs ~13 GB and ~25 min)")
    ap.add_argument("--skip-ceiling", action="store_true",
                    help="leave out the read+normalize+shingle ceiling (at 1M documents ~10 GB and ~30 min)")
    args = ap.parse_args(argv)

    load_start = os.getloadavg()
    corpus_dir, truth, remove_corpus = _corpus(args)
    n = truth.stats["docs"]
    rows, extra = [], {}
    try:
        if args.skip_ceiling:
            print("ceiling skipped (--skip-ceiling)")
        else:
            ceil_result, usage = measured(ceiling, str(corpus_dir))
            rows.append(_row("ceiling: read+normalize+shingle", n, ceil_result[0], usage, 1, None))
            extra["ceiling"] = ceil_result[1]

        perm = args.num_perm or 128
        if args.skip_datasketch:
            print("datasketch skipped (--skip-datasketch): compare with a smaller run's ratio")
        else:
            (removed, seconds, stats), usage = measured(datasketch_baseline, str(corpus_dir), args.threshold, perm)
            rows.append(_row(f"datasketch (num_perm={perm}, 1 core)", n, seconds, usage, 1, score(removed, truth)))
            extra["datasketch"] = stats

        why = tamis_available()
        if why:
            print(f"tamis minhash_dedup not available yet ({why.splitlines()[0]})")
        else:
            store = Path(tempfile.mkdtemp(prefix="neardup-store-"))
            try:
                (removed, seconds, stats), usage = measured(
                    run_tamis, str(corpus_dir), str(store), args.threshold, NGRAM, args.num_perm,
                    not args.no_verify, cores=args.cores,
                    lsh={"bands": args.bands[0], "rows": args.bands[1]} if args.bands else None,
                    max_hops=args.max_hops)
                rows.append(_row(f"tamis ({args.cores} cores)", n, seconds, usage, args.cores,
                                 score(removed, truth)))
                extra["tamis"] = stats
            finally:
                if args.keep:
                    print(f"tamis store kept in {store}")
                else:
                    shutil.rmtree(store, ignore_errors=True)
    finally:
        if remove_corpus:
            shutil.rmtree(corpus_dir, ignore_errors=True)
        elif args.keep or args.corpus:
            print(f"corpus kept in {corpus_dir}")

    info = machine()
    load_end = os.getloadavg()
    print(f"\nmachine: {info['cores']} cores, {info['cpu_model']}, {info['memory_gb']} GiB, GPU {info['gpu']};"
          f" Python {info['python']}, datasketch {info['datasketch']};"
          f" load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    print(nc.format_stats(truth.stats))
    print(f"truth: Jaccard >= {truth.threshold} on word {truth.ngram}-gram sets; methods run at threshold"
          f" {args.threshold}\n")
    print(render(rows))
    ds = next((r for r in rows if r["method"].startswith("datasketch")), None)
    tm = next((r for r in rows if r["method"].startswith("tamis")), None)
    ratio = None
    if tm and ds:
        ratio = {"docs_per_s_per_core": round(tm["docs_per_s_per_core"] / ds["docs_per_s_per_core"], 3),
                 "docs_per_cpu_s": round(tm["docs_per_cpu_s"] / ds["docs_per_cpu_s"], 3),
                 "docs_per_s": round(tm["docs_per_s"] / ds["docs_per_s"], 3)}
        print(f"\ntamis/datasketch: docs/s per core x{ratio['docs_per_s_per_core']}, docs per CPU-second"
              f" x{ratio['docs_per_cpu_s']}, docs/s x{ratio['docs_per_s']}")
    for r in rows:
        if "pair_recall_by_kind" in r:
            print(f"{r['method']}: pair recall by kind {r['pair_recall_by_kind']}; planted non-duplicates"
                  f" removed {r['planted_negatives_removed'] or 0}")
    if "ceiling" in extra:
        print(f"ceiling phases: {extra['ceiling']}")
    if "datasketch" in extra:
        print(f"datasketch phases: {extra['datasketch']}")
    if "tamis" in extra:
        print(f"tamis: {extra['tamis']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "load_average": {"start": load_start, "end": load_end},
                       "args": vars(args), "corpus": truth.stats, "rows": rows, "ratio_tamis_datasketch": ratio,
                       "phases": extra}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
