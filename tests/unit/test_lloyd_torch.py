"""lloyd_torch: FAISS's spherical k-means step for step in torch (run on torch's CPU here)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from operators.embedding.kmeans import initial_centroids
from operators.embedding.lloyd_torch import _Draws, lloyd_torch, split_clusters
from tests.support.embedding_vectors import clustered


def plain_faiss(x: np.ndarray, init: np.ndarray, niter: int) -> tuple[np.ndarray, float, list[int]]:
    km = faiss.Kmeans(x.shape[1], len(init), niter=niter, seed=1234, spherical=True, max_points_per_centroid=256,
                      min_points_per_centroid=1, verbose=False)
    km.train(x, init_centroids=init)
    splits = [s["nsplit"] if isinstance(s, dict) else s.nsplit for s in km.iteration_stats]
    return km.centroids / np.linalg.norm(km.centroids, axis=1, keepdims=True), float(km.obj[-1]), splits


def test_same_centroids_and_objective_as_faiss_from_the_same_start() -> None:
    x = np.ascontiguousarray(clustered(20_000, 32, 20, 0.1, seed=1), dtype=np.float32)
    init = initial_centroids(x, 100, 1234)
    want, want_obj, splits = plain_faiss(x, init, 10)
    got, got_obj = lloyd_torch(x, init, 10, "cpu")
    assert sum(splits) == 0
    assert np.abs(got - want).max() < 1e-5
    assert np.array_equal((x @ got.T).argmax(1), (x @ want.T).argmax(1))
    assert got_obj == pytest.approx(want_obj, rel=1e-5)  # FAISS adds up in float32


def test_empty_clusters_split_as_faiss_splits_them() -> None:
    # 10 copies of each point: initial centroids repeat, so the first iteration leaves clusters empty
    x = np.ascontiguousarray(np.repeat(clustered(300, 16, 3, 0.2, seed=2), 10, axis=0), dtype=np.float32)
    init = initial_centroids(x, 60, 1234)
    want, want_obj, splits = plain_faiss(x, init, 8)
    got, got_obj = lloyd_torch(x, init, 8, "cpu")
    assert splits[0] > 0  # the case under test happened
    assert np.abs(got - want).max() < 1e-5
    assert got_obj == pytest.approx(want_obj, rel=1e-5)


def test_split_clusters_copies_a_drawn_cluster_with_the_symmetric_perturbation() -> None:
    centroids = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 4.0]], np.float32)
    hassign = np.array([5.0, 0.0, 7.0], np.float32)
    out = split_clusters(centroids, hassign, 12)
    (cj,) = [j for j in (0, 2) if not np.array_equal(out[j], centroids[j])]
    assert out[1] == pytest.approx(centroids[cj] * [1 + 1 / 1024, 1 - 1 / 1024])
    assert out[cj] == pytest.approx(centroids[cj] * [1 - 1 / 1024, 1 + 1 / 1024])
    assert hassign[1] + hassign[cj] == {0: 5.0, 2: 7.0}[cj] and hassign[1] > 0


def test_draws_are_std_mt19937_seeded_1234() -> None:
    # std::mt19937(1234)'s first two outputs are 822569775 and 2137449171
    draws = _Draws()
    first = draws.take(2)
    assert first.tolist() == pytest.approx([822569775 / 2**32, 2137449171 / 2**32], rel=1e-6)
    draws.consume(1)
    assert draws.take(1)[0] == first[1]
