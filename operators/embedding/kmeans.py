"""Spherical k-means over document embeddings: a fit on a bounded sample, then an assign map.

``kmeans`` is a composite of two primitives:

1. ``kmeans.fit`` streams every document's ``id`` and ``embedding`` once. It counts the valid
   embeddings N and keeps a deterministic sample: bottom-m by xxh64 of the id (Cohen and
   Kaplan, PODC 2007, as ``quantiles`` samples), with m = k x ``max_points_per_centroid``
   (FAISS's own cap, 256). k is ``k`` when given, else round(N / ``docs_per_cluster``) (one
   cluster per 10,000 documents by default), at least 1, and at most m_sample / 39 (FAISS's
   ``min_points_per_centroid``) so the sample supports it; a given ``k`` is capped at the sample
   size only. Since the default k is known only at the end, the fit keeps every vector whose
   hash falls in the lowest 1.25 x max_points_per_centroid / docs_per_cluster of the hash range
   (about 1.25 m / N, a fraction that does not depend on N) plus the bottom
   ``max_points_per_centroid`` hashes; the final sample is the bottom m of what was kept. Both
   kept sets depend only on the ids, never on file order, batching or workers. Then
   ``faiss.Kmeans(spherical=True, niter)`` (Lloyd iterations; centroids re-normalized to
   unit length after each) trains on the sample sorted by (hash, id), from k sample rows
   drawn with ``seed``. On a GPU (``device`` auto where torch sees one; on a cluster with GPUs
   the fit task asks Ray for one) the same iterations run in torch (lloyd_torch.py), from the
   same rows. The artifact holds the k unit-length centroids.
2. ``kmeans.assign`` writes each document's nearest centroid by cosine similarity
   (``cluster_id``, ties to the smallest id) and ``cluster_distance`` = 1 - cos to it.

Reference: FAISS k-means (Johnson, Douze and Jegou 2019; the faiss wiki page "Faiss building
blocks: clustering, PCA, quantization"); spherical k-means as SemDeDup uses it (Abbas et al. 2023).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from operators.base import Composite, FitOperator, MapOperator, OperatorConfig, Part, ResourceHint, set_column
from operators.embedding.vectors import CLUSTER_DISTANCE, CLUSTER_ID, EMBEDDING, embedding_matrix, id_hashes
from operators.registry import register

log = logging.getLogger(__name__)

MIN_POINTS_PER_CENTROID = 39  # FAISS warns below this many training points per centroid
SLACK = 1.25  # hash-range fraction kept beyond m/N, so the bottom m are all kept (5 sigma at m=512)
HASH_RANGE = float(2**64)


class KMeansConfig(OperatorConfig):
    k: int | None = Field(None, ge=1, description="Number of clusters; null: about N / docs_per_cluster, at "
                          "least 1 and at most sample size / 39.")
    docs_per_cluster: int = Field(10_000, ge=1, description="Documents per cluster when k is null.")
    niter: int = Field(20, ge=1, le=1000, description="Lloyd iterations (faiss.Kmeans niter).")
    seed: int = Field(1234, ge=0, description="Seed of FAISS's centroid initialization.")
    max_points_per_centroid: int = Field(256, ge=MIN_POINTS_PER_CENTROID, description="The training sample "
                                         "holds at most k times this many vectors (bottom-k by id hash).")
    column: str = Field(EMBEDDING, description="List<float> column holding L2-normalized embeddings.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where k-means trains: auto (a GPU where torch sees one: FAISS's iterations in "
        "torch; else FAISS on the CPU), cpu, or cuda (an error without a GPU). Same centroids up to the "
        "devices' floating-point differences.")


class _BottomSample:
    """The vectors whose id hash is under ``cut`` or among the ``floor`` smallest, streamed.

    Rows that can no longer qualify are discarded as they arrive; the kept chunks are
    compacted whenever they have doubled, so the work is linear in the input.
    """

    def __init__(self, floor: int, cut: np.uint64) -> None:
        self.floor, self.cut = floor, cut
        self.limit = np.uint64(2**64 - 1)  # the floor-th smallest hash so far, once there are floor
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.rows, self.compacted = 0, 0

    def add(self, h: np.ndarray, x: np.ndarray, ids: np.ndarray) -> None:
        take = (h < self.cut) | (h <= self.limit)
        if take.any():
            self.chunks.append((h[take], x[take], ids[take]))
            self.rows += int(take.sum())
        if self.rows > 2 * self.floor + 2 * self.compacted:
            self._compact()

    def _compact(self) -> None:
        h, x, ids = (np.concatenate(parts) for parts in zip(*self.chunks))
        order = np.lexsort((ids, h))
        rank = np.empty(len(h), np.int64)
        rank[order] = np.arange(len(h))
        keep = (h < self.cut) | (rank < self.floor)
        if len(h) >= self.floor:
            self.limit = h[order[self.floor - 1]]
        self.chunks = [(h[keep], x[keep], ids[keep])]
        self.rows = self.compacted = int(keep.sum())

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[None, None, None]:
        if not self.chunks:
            return None, None, None
        self._compact()
        return self.chunks[0]


def _keep(h: np.ndarray, x: np.ndarray, ids: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.lexsort((ids, h))[:m]
    return h[order], x[order], ids[order]


@register("kmeans.fit")
class KMeansFit(FitOperator[KMeansConfig]):
    """Spherical k-means centroids (FAISS) on a bottom-k sample by id hash; see the module doc.

    Reads: id, embedding. Writes no document column: the artifact (cluster_id int64,
    centroid list<float32>[d], unit length). Metrics: documents, sample, k, objective (FAISS's
    final objective: for spherical k-means the sum over the sample of cos to the assigned
    centroid), inertia (sum of squared L2 distances of the sample to its centroids, = 2 x sum
    of 1 - cos for unit vectors), fit_seconds.
    Deterministic for the same ids, vectors and config on CPU FAISS (same thread count); the
    GPU path differs from the CPU in the last bits (float32 products in another order), which
    over the iterations moves a few documents near cluster borders (1.9 % of 1,000,000 at
    k = 1,000, docs/benchmarks.md); its float64 sums keep reruns on one GPU alike.
    """

    version = 2  # 2: both devices start from initial_centroids (FAISS drew its own before)
    Config = KMeansConfig
    # a GPU when the cluster has any: Ray hides the GPUs from a task that asked for none, and
    # on one the fit is 20x FAISS on 16 cores at k = 4,000 (docs/benchmarks.md)
    resources = ResourceHint(num_cpus=1.0, gpus_when_available=1.0)
    multithreaded = True  # FAISS's OpenMP threads: the engine reserves a node's CPUs and sets threads

    def __init__(self, config: KMeansConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, KMeansConfig)
        return ("id", config.column)

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        c = self.config
        floor = c.k * c.max_points_per_centroid if c.k else c.max_points_per_centroid
        rate = 0.0 if c.k else SLACK * c.max_points_per_centroid / c.docs_per_cluster
        cut = np.uint64(min(rate, 0.999) * HASH_RANGE)
        sample = _BottomSample(floor, cut)
        n = 0
        for batch in batches:
            vectors, valid = embedding_matrix(batch[c.column], c.column)
            if not valid.any():
                continue
            n += int(valid.sum())
            sample.add(id_hashes(batch["id"])[valid], vectors[valid],
                       np.asarray(batch["id"].to_pylist(), dtype=str)[valid])
        h, x, ids = sample.result()
        if h is None or n == 0:
            return pa.table({"cluster_id": pa.array([], pa.int64()), "centroid": pa.array([], pa.list_(pa.float32()))})
        k = c.k if c.k else max(1, round(n / c.docs_per_cluster))
        h, x, ids = _keep(h, x, ids, k * c.max_points_per_centroid)
        k = min(k, len(h)) if c.k else max(1, min(k, len(h) // MIN_POINTS_PER_CENTROID))
        h, x, ids = _keep(h, x, ids, k * c.max_points_per_centroid)
        centroids, objective, seconds, gpus = train(np.ascontiguousarray(x), k, c, self.threads)
        self._metrics = {"documents": n, "sample": len(h), "k": k, "objective": objective,
                         "inertia": 2.0 * (len(h) - objective), "fit_seconds": seconds, "threads": self.threads,
                         "gpus": gpus}
        log.info("kmeans.fit: %d documents, sample %d, k %d, on %s, %.1f s", n, len(h), k,
                 f"{gpus} GPU(s)" if gpus else f"the CPU ({self.threads} FAISS threads)", seconds)
        d = centroids.shape[1]
        flat = pa.array(centroids.reshape(-1), pa.float32())
        return pa.table({"cluster_id": pa.array(np.arange(k, dtype=np.int64)),
                         "centroid": pa.FixedSizeListArray.from_arrays(flat, d)})


def train(sample: np.ndarray, k: int, config: KMeansConfig, threads: int = 1) -> tuple[np.ndarray, float, float, int]:
    """Spherical k-means on ``sample`` from ``initial_centroids``: FAISS on the CPU with
    ``threads`` OpenMP threads, or the same iterations in torch on a GPU (lloyd_torch.py)
    where ``config.device`` asks for one: (unit centroids, final objective, seconds, GPUs used).

    With ``spherical`` FAISS clusters with an inner-product index, so its objective is the
    sum of cosine similarities to the assigned centroids (maximized). The thread count is set
    explicitly: inside a Ray task OpenMP would otherwise take the worker's OMP_NUM_THREADS.

    Raises:
        RuntimeError: ``device`` is cuda and torch sees no GPU.
    """
    started = time.perf_counter()
    if len(sample) <= k:  # every point its own centroid (FAISS copies them too, without iterating)
        return sample.astype(np.float32), float(len(sample)), time.perf_counter() - started, 0
    init = initial_centroids(sample, k, config.seed)
    if _on_gpu(config.device):
        from operators.embedding.lloyd_torch import lloyd_torch

        centroids, objective = lloyd_torch(sample, init, config.niter, "cuda")
        return centroids.astype(np.float32), objective, time.perf_counter() - started, 1
    import faiss  # here, not at module level: every CLI command loads the registry

    faiss.omp_set_num_threads(max(1, threads))
    km = faiss.Kmeans(sample.shape[1], k, niter=config.niter, seed=config.seed, spherical=True, gpu=False,
                      max_points_per_centroid=config.max_points_per_centroid,
                      min_points_per_centroid=1, verbose=False)
    km.train(sample, init_centroids=init)
    centroids = km.centroids / np.maximum(np.linalg.norm(km.centroids, axis=1, keepdims=True), 1e-12)
    objective = float(km.obj[-1]) if len(km.obj) else float(len(sample))
    return centroids.astype(np.float32), objective, time.perf_counter() - started, 0


def initial_centroids(sample: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k distinct sample rows chosen by numpy's legacy RandomState(seed), whose stream numpy
    keeps fixed across versions: both devices start from them (FAISS draws its own with its
    own generator, which the GPU path could not repeat)."""
    return sample[np.random.RandomState(seed).permutation(len(sample))[:k]]


def _on_gpu(device: str) -> bool:
    # a task that asked Ray for no GPU sees none; torch is already on every GPU node (embed)
    from operators.embedding.similarity_blocks import gpu_visible

    if device == "cpu":
        return False
    visible = gpu_visible()
    if device == "cuda" and not visible:
        raise RuntimeError("kmeans device: cuda, but torch sees no CUDA GPU in this worker "
                           "(give the stage resources: {num_gpus: 1}, or use device: auto)")
    return visible


def nearest(vectors: np.ndarray, centroids: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's most similar centroid (ties: smallest) and 1 - cos to it.

    The argmax uses float32 products over blocks of centroids (memory bounded by the batch
    times ``block``); the distance is then recomputed row by row in float64, so it does not
    depend on the batch the row came in.
    """
    best = np.full(len(vectors), -np.inf, np.float32)
    arg = np.zeros(len(vectors), np.int64)
    for start in range(0, len(centroids), block):
        sims = vectors @ centroids[start:start + block].T
        top = sims.argmax(axis=1)
        value = sims[np.arange(len(vectors)), top]
        better = value > best
        best[better], arg[better] = value[better], top[better] + start
    cos = np.einsum("ij,ij->i", vectors, centroids[arg], dtype=np.float64)
    return arg, np.clip(1.0 - cos, 0.0, 2.0)


@register("kmeans.assign")
class ClusterAssign(MapOperator[KMeansConfig]):
    """Each document's nearest k-means centroid (cosine) and its distance to it.

    Reads: embedding. Writes: cluster_id (int64), cluster_distance (float32, 1 - cos, in
    [0, 2]); both null where the embedding is null or of the wrong length. Deterministic per
    row; the argmax in float32 may, in an exact tie to ~1e-7, depend on the batch a row is in.
    """

    keeps_rows = True
    version = 1
    Config = KMeansConfig
    uses_artifact = True
    writes = (CLUSTER_ID, CLUSTER_DISTANCE)

    def __init__(self, config: KMeansConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        if artifact is None or artifact.num_rows == 0:
            self.centroids = np.zeros((0, 0), np.float32)
        else:
            table = artifact.sort_by("cluster_id")
            self.centroids, _ = embedding_matrix(table["centroid"], "centroid")
            self.ids = table["cluster_id"].to_numpy()

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, KMeansConfig)
        return (config.column,)

    def __call__(self, batch: pa.Table) -> pa.Table:
        vectors, valid = embedding_matrix(batch[self.config.column], self.config.column)
        if len(self.centroids) == 0 or vectors.shape[1] != self.centroids.shape[1]:
            valid = np.zeros(batch.num_rows, bool)
        cluster = np.zeros(batch.num_rows, np.int64)
        distance = np.zeros(batch.num_rows, np.float32)
        if valid.any():
            arg, dist = nearest(vectors[valid], self.centroids)
            cluster[valid], distance[valid] = self.ids[arg], dist
        batch = set_column(batch, CLUSTER_ID, pa.array(cluster, mask=~valid))
        return set_column(batch, CLUSTER_DISTANCE, pa.array(distance, mask=~valid))


@register("kmeans")
class KMeans(Composite[KMeansConfig]):
    """Spherical k-means (FAISS) on a bounded id-hash sample, then nearest-centroid assignment."""

    Config = KMeansConfig

    @classmethod
    def parts(cls, config: KMeansConfig) -> Sequence[Part]:
        # assign reads the centroids from the fit's artifact: of the config, only the column
        # device only chooses where the same centroids are computed: not in the fingerprint
        fit = ("k", "docs_per_cluster", "niter", "seed", "max_points_per_centroid", "column")
        return (Part("fit", KMeansFit, config, fit), Part("assign", ClusterAssign, config, ("column",)))
