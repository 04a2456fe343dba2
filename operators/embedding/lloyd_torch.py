"""Spherical k-means in torch, step for step as FAISS's ``Clustering::train``: for GPUs.

Why not FAISS's own GPU build: the registry's ``faiss-gpu-cu12`` (1.14.1.post1, also
1.13.2) carries kernels for compute capability 7.0 and 8.0 only, so on Hopper (H100, H200)
its first search aborts the process with CUDA error 209, "no kernel image is available"
(seen on a lent H100, 2026-12-05; faiss-wheels issue #151). torch is on every GPU node
already (the embedding stage), and k-means is a few lines of matrix products in it.

The algorithm is FAISS's (faiss/Clustering.cpp, ``train_encoded`` with an inner-product
index and ``spherical``), from the same initial centroids:

1. Each iteration assigns every sample row to its most similar centroid (argmax of the
   inner product; ties to the smallest index), and adds up the objective (the sum of those
   similarities, as FAISS's ``obj``).
2. Each centroid becomes the mean of its rows (FAISS sums in float32; here the sums are
   float64, rounded to float32 once, so they do not depend on the GPU's summation order).
3. Empty clusters are split as FAISS's ``split_clusters`` does: a cluster cj is drawn with
   probability (n_j - 1) / (n - k) from std::mt19937 seeded with 1234 (numpy's legacy
   MT19937 yields the same stream), its centroid copied, and the two copies scaled by
   1 +- 1/1024 alternately per dimension.
4. Centroids are renormalized to unit length.

Products are full float32 (TF32 off), in blocks of rows so the similarity matrix stays
bounded; the sample lives on the device when it fits in half of the free memory, else each
block is copied in per iteration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPLIT_EPS = 1 / 1024  # FAISS's EPS in split_clusters
SPLIT_SEED = 1234  # FAISS seeds split_clusters' generator with this on every call
BLOCK_BYTES = 256 << 20  # similarity block: rows x k float32 products


def lloyd_torch(sample: np.ndarray, init: np.ndarray, niter: int, device: str = "cuda") -> tuple[np.ndarray, float]:
    """``niter`` spherical Lloyd iterations from ``init`` on ``device``.

    Args:
        sample: (n, d) float32 unit vectors, n > k.
        init: (k, d) float32 initial centroids (renormalized here, as FAISS does).
        niter: Iterations.
        device: A torch device: cuda, or cpu for tests.

    Returns:
        The (k, d) unit centroids and the last iteration's objective (sum of similarities).
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # full float32 products, as FAISS's sgemm
    n, d = sample.shape
    k = len(init)
    host = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    x = host.to(device) if _fits(host, device, torch) else host
    centroids = _renorm(torch.from_numpy(np.ascontiguousarray(init, dtype=np.float32)).to(device))
    block = int(min(max(BLOCK_BYTES // (4 * k), 1024), 1 << 16))
    objective = 0.0
    for _ in range(niter):
        sums = torch.zeros((k, d), dtype=torch.float64, device=device)
        counts = torch.zeros(k, dtype=torch.int64, device=device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, n, block):
            rows = x[start:start + block].to(device, non_blocking=True)
            best, nearest = (rows @ centroids.T).max(dim=1)
            total += best.double().sum()
            sums.index_add_(0, nearest, rows.double())
            counts += torch.bincount(nearest, minlength=k)
        objective = float(total)
        hassign = counts.cpu().numpy().astype(np.float32)
        means = (sums / counts.clamp(min=1).double()[:, None]).float()
        if (hassign == 0).any():
            means = torch.from_numpy(split_clusters(means.cpu().numpy(), hassign, n)).to(device)
        centroids = _renorm(means)
    return centroids.cpu().numpy(), objective


def split_clusters(centroids: np.ndarray, hassign: np.ndarray, n: int) -> np.ndarray:
    """FAISS's ``split_clusters``: every empty cluster takes a perturbed copy of a large one.

    ``hassign`` (float32 counts) is updated in place as FAISS does (an even split assumed);
    empty clusters' centroids are zero on entry.
    """
    centroids = centroids.copy()
    draws = _Draws()
    scale = np.where(np.arange(centroids.shape[1]) % 2 == 0, 1 + SPLIT_EPS, 1 - SPLIT_EPS)
    for ci in np.flatnonzero(hassign == 0):
        cj = _draw_cluster(hassign, n, draws)
        # float x double then rounded to float, as C++'s `c[j] *= 1 + EPS` on a float
        centroids[ci] = (centroids[cj].astype(np.float64) * scale).astype(np.float32)
        centroids[cj] = (centroids[cj].astype(np.float64) * (2 - scale)).astype(np.float32)
        hassign[ci] = hassign[cj] / np.float32(2)
        hassign[cj] -= hassign[ci]
    return centroids


class _Draws:
    """FAISS's ``rng.rand_float()`` stream: std::mt19937(1234) outputs / float(mt.max()).

    numpy's legacy MT19937 seeded with an integer is the same generator; outputs are made in
    chunks and handed out one by one, so the stream position is FAISS's.
    """

    def __init__(self) -> None:
        self.rng = np.random.RandomState(SPLIT_SEED)
        self.buffer = np.zeros(0, np.float32)
        self.position = 0

    def take(self, m: int) -> np.ndarray:
        """The next ``m`` draws, without consuming them (see ``consume``)."""
        while len(self.buffer) - self.position < m:
            raw = self.rng.randint(0, 2**32, size=max(m, 4096), dtype=np.uint32)  # the raw outputs
            self.buffer = np.concatenate([self.buffer[self.position:], raw.astype(np.float32) / np.float32(2**32 - 1)])
            self.position = 0
        return self.buffer[self.position:self.position + m]

    def consume(self, m: int) -> None:
        self.position += m


def _draw_cluster(hassign: np.ndarray, n: int, draws: _Draws) -> int:
    """The first cj = 0, 1, 2, ... (cycling over k) whose draw r < (n_j - 1) / (n - k).

    Checked k draws at a time: hassign does not change during one search and every round
    starts at cj = 0 again, so this is FAISS's loop exactly, one draw per candidate.
    """
    k = len(hassign)
    p = ((hassign.astype(np.float64) - 1.0) / np.float64(np.float32(n - k))).astype(np.float32)
    while True:
        hits = np.flatnonzero(draws.take(k) < p)
        if len(hits):
            draws.consume(int(hits[0]) + 1)
            return int(hits[0])
        draws.consume(k)


def _renorm(centroids: Any) -> Any:
    """Unit rows; zero rows stay zero (FAISS's fvec_renorm_L2)."""
    norms = centroids.norm(dim=1, keepdim=True)
    return centroids / norms.clamp(min=1e-30)


def _fits(host: Any, device: str, torch: Any) -> bool:
    if not str(device).startswith("cuda"):
        return True
    free, _ = torch.cuda.mem_get_info()
    return host.numel() * 4 < free // 2
