"""Embedding space: k-means (fit + assign) and semantic dedup against the plain ways.

Synthetic clustered unit vectors (``--vectors``, default 200,000, of ``--dim`` 384: one topic
centre per 10,000 vectors, Gaussian noise, plus 5 % near-copies) are processed four ways,
each in a forked child whose peak RSS (``ru_maxrss`` from ``wait4``, the input vectors the
child touches included) and wall time are reported:

* tamis ``kmeans``: ``kmeans.fit`` over batches of 8,192 rows (bottom-k sample by id hash,
  k = N / 10,000, 256 points per centroid, 20 iterations) then ``kmeans.assign`` per batch;
* plain faiss: ``faiss.Kmeans(spherical=True)`` trained on all the vectors (FAISS subsamples
  k x 256 itself) and ``index.search(x, 1)``, in one process;
* tamis ``semantic_dedup`` (blocked, float64 and float32 products) on the tamis clusters;
* plain numpy: per cluster, the full n x n float32 similarity matrix, its upper triangle's
  column maxima (SemDeDup's reference code), removed where above 1 - eps.

Seconds per million vectors are extrapolated linearly from the measured size: at a fixed
cluster size the dedup cost per vector is constant, but assignment cost per vector grows with
k (k grows with N), so the k-means figure per million is a lower bound for larger N. FAISS and
BLAS use every core of the machine; the load average (other work on the machine) is printed.

With ``--ray`` only k-means is measured, also as a ``tamis run`` stage on a local Ray of every
CPU (fit as one Ray task with FAISS threads set by jobs/execute.py, assign as map tasks; the
two stages' seconds, Ray's start excluded).

``--k`` sets the number of clusters (the semantic dedup figure per million depends on cluster
size: its pairs grow with N^2 / k); ``--devices cpu cuda`` also runs semantic dedup's
similarity blocks on the GPU (torch), same decisions as the CPU's; ``--kmeans-devices cpu
cuda`` also trains tamis's k-means on the GPU (``device: cuda``: torch, the same iterations
as FAISS from the same start) and prints how many documents land in the same cluster as on
the CPU. The plain way is always FAISS on the CPU: the registry's FAISS GPU build has no
kernels for Hopper GPUs (operators/embedding/lloyd_torch.py).

Usage: ``.venv/bin/python bench/embedding_space.py [--vectors 200000] [--dim 384] [--k K]
[--devices cpu cuda] [--kmeans-devices cpu cuda] [--ray]``
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import time
from collections.abc import Callable
from typing import Any

import sys
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo's packages

from operators.embedding.kmeans import ClusterAssign, KMeansConfig, KMeansFit  # noqa: E402
from operators.embedding.semantic_dedup import SemanticDedup, SemanticDedupConfig  # noqa: E402
from tests.support.embedding_vectors import clustered, doc_table, with_near_copies  # noqa: E402

BATCH = 8192
EPS = 0.05


def in_child(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fn`` in a forked child: (its result, wall seconds, peak RSS in MB)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        started = time.perf_counter()
        result = fn()
        payload = pickle.dumps((result, time.perf_counter() - started))
        with os.fdopen(write, "wb") as f:
            f.write(payload)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        result, seconds = pickle.loads(f.read())
    _, _, usage = os.wait4(pid, 0)
    return result, seconds, usage.ru_maxrss / 1024


def tamis_kmeans(table: pa.Table, k: int | None, device: str = "cpu") -> dict[str, Any]:
    config = KMeansConfig(k=k, device=device)
    fit = KMeansFit(config)
    fit.threads = os.cpu_count() or 1  # as jobs/execute.py sets it: every CPU of the node
    artifact = fit.fit(iter(table.slice(s, BATCH) for s in range(0, table.num_rows, BATCH)))
    assign = ClusterAssign(config, artifact)
    out = [assign(table.slice(s, BATCH).select(["embedding"])) for s in range(0, table.num_rows, BATCH)]
    cluster = np.concatenate([o["cluster_id"].to_numpy() for o in out])
    distance = np.concatenate([o["cluster_distance"].to_numpy() for o in out])
    return {"k": fit.metrics()["k"], "cluster": cluster, "distance": distance, "gpus": fit.metrics()["gpus"],
            "fit_s": fit.metrics()["fit_seconds"], "inertia": 2 * float(distance.astype(np.float64).sum())}


def tamis_kmeans_on_ray(table: pa.Table, folder: str, k: int | None) -> dict[str, Any]:
    """``kmeans`` as a `tamis run` stage on a local Ray of every CPU: the fit as one Ray task
    (jobs/execute.py run_fit), assign as map tasks; the two stages' seconds from the run."""
    import pyarrow.parquet as pq
    import ray
    import yaml

    from jobs.scheduler import RunScheduler
    from jobs.pipeline_load import load_pipeline

    files = 8
    rows = -(-table.num_rows // files)
    for n in range(files):
        pq.write_table(table.slice(n * rows, rows).append_column(
            "text", pa.array(["x"] * min(rows, max(0, table.num_rows - n * rows)))), f"{folder}/in-{n}.parquet")
    raw = {"name": "kmeans_bench", "store": f"{folder}/store", "input": {"paths": [f"{folder}/in-*.parquet"],
           "format": "parquet"}, "stages": [{"op": "kmeans", "config": {"k": k} if k else {}}], "execution": {"batch_rows": BATCH}}
    with open(f"{folder}/kmeans.yaml", "w") as f:
        yaml.safe_dump(raw, f)
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        state = RunScheduler(load_pipeline(f"{folder}/kmeans.yaml").spec, "bench").run()
    finally:
        ray.shutdown()
    stages = {s["name"]: s for s in state["stages"]}
    return {"fit_s": stages["kmeans.fit"]["seconds"], "assign_s": stages["kmeans.assign"]["seconds"],
            "threads": stages["kmeans.fit"]["metrics"].get("threads"), "k": stages["kmeans.fit"]["metrics"]["k"],
            "gpus": stages["kmeans.fit"]["metrics"].get("gpus", 0)}


def plain_kmeans(x: np.ndarray, k: int) -> dict[str, Any]:
    km = faiss.Kmeans(x.shape[1], k, niter=20, seed=1234, spherical=True, max_points_per_centroid=256, verbose=False)
    km.train(x)
    sims, cluster = km.index.search(x, 1)
    return {"k": k, "inertia": 2 * float((1 - sims.astype(np.float64)).sum())}


def tamis_dedup(table: pa.Table, precision: str, device: str) -> dict[str, Any]:
    op = SemanticDedup(SemanticDedupConfig(eps=EPS, precision=precision, device=device))
    order = np.argsort(table["cluster_id"].to_numpy(), kind="stable")
    op(table.take(pa.array(order)))
    return {"removed": int(op.metrics()["removed"]), "largest": int(op.metrics()["largest_cluster"])}


def plain_dedup(x: np.ndarray, cluster: np.ndarray, distance: np.ndarray) -> dict[str, Any]:
    removed = 0
    for c in np.unique(cluster):
        rows = np.flatnonzero(cluster == c)
        rows = rows[np.argsort(-distance[rows], kind="stable")]  # farthest first, as SemDeDup
        v = x[rows]
        sims = v @ v.T
        sims[np.tril_indices(len(rows))] = -np.inf  # keep (i < j): j compared with earlier i
        removed += int((sims.max(axis=0) > 1 - EPS).sum())
    return {"removed": removed}


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.python_version()}, faiss {faiss.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--ray", action="store_true", help="k-means only, also as a `tamis run` stage on Ray")
    parser.add_argument("--k", type=int, default=None, help="clusters (default: kmeans's own, N / 10,000)")
    parser.add_argument("--devices", nargs="+", default=["cpu"], choices=("cpu", "cuda"),
                        help="where semantic dedup computes its similarity blocks")
    parser.add_argument("--kmeans-devices", nargs="+", default=["cpu"], choices=("cpu", "cuda"),
                        help="where tamis's k-means trains (the plain FAISS one: on the CPU)")
    args = parser.parse_args()
    n = args.vectors
    base = clustered(n - n // 20, args.dim, max(1, n // 10_000), 0.06, seed=1)
    x, _ = with_near_copies(base, n // 20, 0.004, seed=2)
    table = doc_table(x)
    print(f"{machine()}\nload average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{n} vectors x {args.dim} (float32, {x.nbytes / 2**20:.0f} MB), eps {EPS}\n")
    rows = []
    by_device: dict[str, dict[str, Any]] = {}
    plain: dict[str, Any] = {}
    for device in args.kmeans_devices:
        ours, t1, m1 = in_child(lambda: tamis_kmeans(table, args.k, device))
        if not plain:
            plain, t2, m2 = in_child(lambda: plain_kmeans(x, ours["k"]))
        rows.append((f"k-means fit + assign {device}", f"k={ours['k']}", t1, m1, t2, m2,
                     f"inertia {ours['inertia']:.0f} vs {plain['inertia']:.0f}; fit {ours['fit_s']:.1f} s "
                     f"on {ours['gpus']} GPUs"))
        by_device[device] = ours
    if len(by_device) == 2:  # the same centroids up to floating point: how many documents move
        same = float(np.mean(by_device["cpu"]["cluster"] == by_device["cuda"]["cluster"]))
        print(f"k-means cpu vs cuda: {same:.4%} of documents in the same cluster, inertia "
              f"{by_device['cpu']['inertia']:.1f} vs {by_device['cuda']['inertia']:.1f}\n")
    ours = by_device[args.kmeans_devices[0]]
    if args.ray:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            on_ray, t5, m5 = in_child(lambda: tamis_kmeans_on_ray(table, folder, args.k))
        seconds = on_ray["fit_s"] + on_ray["assign_s"]
        rows.append(("k-means on Ray (2 stages)", f"{on_ray['threads']} threads", seconds, m5, t2, m2,
                     f"fit {on_ray['fit_s']:.1f} s on {on_ray['gpus']} GPUs + assign {on_ray['assign_s']:.1f} s; "
                     f"whole run {t5:.1f} s; k={on_ray['k']}"))
    clustered_table = table.append_column("cluster_id", pa.array(ours["cluster"])).append_column(
        "cluster_distance", pa.array(ours["distance"]))
    if args.ray:  # k-means only
        _print(rows, n)
        return
    base_dedup, t4, m4 = in_child(lambda: plain_dedup(x, ours["cluster"], ours["distance"]))
    for device in args.devices:
        for precision in ("float64", "float32"):
            dedup, t3, m3 = in_child(lambda: tamis_dedup(clustered_table, precision, device))
            rows.append((f"semantic dedup {device} {precision[-2:]}", f"largest {dedup['largest']}", t3, m3, t4, m4,
                         f"removed {dedup['removed']} vs {base_dedup['removed']}"))
    _print(rows, n)


def _print(rows: list[tuple[Any, ...]], n: int) -> None:
    scale = 1e6 / n
    print(f"{'work':<26} {'':<15} {'tamis s/M':>10} {'peak MB':>8} {'plain s/M':>10} {'peak MB':>8} "
          f"{'ratio':>6}  check")
    for work, note, ta, ma, tb, mb, check in rows:
        print(f"{work:<26} {note:<15} {ta * scale:>10.1f} {ma:>8.0f} {tb * scale:>10.1f} {mb:>8.0f} "
              f"{ta / tb:>6.2f}  {check}")
    print(f"\ns/M: seconds per million vectors, extrapolated linearly from {n} (see the docstring); "
          f"measured seconds = s/M / {scale:g}.")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
