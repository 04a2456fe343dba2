"""kmeans: bottom-k sample by id hash, FAISS spherical k-means, nearest-centroid assignment."""

from __future__ import annotations

import faiss
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.embedding.kmeans import ClusterAssign, KMeans, KMeansConfig, KMeansFit
from operators.embedding.similarity_blocks import gpu_visible
from operators.embedding.vectors import embedding_matrix, id_hashes
from tests.support.embedding_vectors import clustered, doc_table, embedding_array, unit


def fit(table: pa.Table, config: KMeansConfig, rows: int = 1000) -> tuple[pa.Table, dict[str, float]]:
    op = KMeansFit(config)
    artifact = op.fit(iter(pa.Table.from_batches([b]) for b in table.to_batches(max_chunksize=rows)))
    return artifact, op.metrics()


def test_inertia_within_one_percent_of_plain_faiss_on_the_same_sample() -> None:
    x = clustered(30_000, 32, 40, 0.3, seed=1)
    table = doc_table(x)
    config = KMeansConfig(docs_per_cluster=1000, niter=20, seed=7)
    shuffled = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    artifact, metrics = fit(shuffled, config, rows=777)
    assert metrics["k"] == 30 and metrics["documents"] == 30_000
    # the same sample, taken the plain way: the 30 x 256 smallest id hashes, in hash order
    hashes = id_hashes(table["id"])
    sample = x[np.argsort(hashes, kind="stable")[: 30 * 256]]
    assert metrics["sample"] == len(sample)
    plain = faiss.Kmeans(32, 30, niter=20, seed=7, spherical=True, max_points_per_centroid=256, verbose=False)
    plain.train(sample)
    # spherical FAISS maximizes the sum of cosines; inertia = sum of |x - c|^2 = 2 sum (1 - cos)
    assert metrics["inertia"] == pytest.approx(2 * (len(sample) - plain.obj[-1]), rel=0.01)
    # and on the whole corpus, through the assign map
    out = ClusterAssign(config, artifact)(table)
    ours = 2 * float(np.sum(out["cluster_distance"].to_numpy()))
    theirs = 2 * float((1 - plain.index.search(x, 1)[0]).sum())  # an inner-product index
    assert ours == pytest.approx(theirs, rel=0.01)


def test_fit_does_not_depend_on_row_order_or_batches() -> None:
    table = doc_table(clustered(5_000, 16, 8, 0.3, seed=2))
    config = KMeansConfig(k=4, niter=5, max_points_per_centroid=100)
    a, _ = fit(table, config, rows=5000)
    b, _ = fit(table.take(pa.array(np.random.default_rng(3).permutation(5000))), config, rows=333)
    assert a.equals(b)


@pytest.mark.parametrize(("n", "docs_per_cluster", "k", "expected"), [
    (30_000, 10_000, None, 3), (500, 10_000, None, 1), (1_000, 10, None, 1_000 // 39), (30, 10_000, 50, 30)])
def test_k_scales_with_the_corpus_and_the_sample(n: int, docs_per_cluster: int, k: int | None,
                                                 expected: int) -> None:
    table = doc_table(clustered(n, 8, 5, 0.5, seed=4))
    artifact, metrics = fit(table, KMeansConfig(k=k, docs_per_cluster=docs_per_cluster, niter=2))
    assert metrics["k"] == expected == artifact.num_rows
    assert np.allclose(np.linalg.norm(embedding_matrix(artifact["centroid"])[0], axis=1), 1, atol=1e-5)


def test_assign_writes_nearest_centroid_and_cosine_distance() -> None:
    centroids = pa.table({"cluster_id": pa.array([0, 1], pa.int64()),
                          "centroid": embedding_array(np.array([[1, 0], [0, 1]], np.float32))})
    vectors = unit(np.array([[1, 0.1], [0.2, 1], [-1, 0], [1, 1]], np.float32))
    table = pa.table({"id": ["a", "b", "c", "e", "d"],
                      "embedding": pa.array([*vectors.tolist(), None], pa.list_(pa.float32()))})
    out = ClusterAssign(KMeansConfig(), centroids)(table)
    assert out["cluster_id"].to_pylist() == [0, 1, 1, 0, None]  # e: an exact tie goes to the smaller id
    expected = [1 - vectors[0, 0], 1 - vectors[1, 1], 1.0, 1 - vectors[3, 0]]
    assert out["cluster_distance"].to_pylist()[:4] == pytest.approx(expected, abs=1e-6)
    assert out["cluster_distance"][4].as_py() is None


def test_empty_input_gives_an_empty_artifact_and_assign_marks_nothing() -> None:
    artifact, _ = fit(doc_table(np.zeros((0, 4), np.float32)), KMeansConfig())
    assert artifact.num_rows == 0
    out = ClusterAssign(KMeansConfig(), None)(doc_table(unit(np.ones((2, 4), np.float32))))
    assert out["cluster_id"].null_count == 2


def test_composite_is_a_fit_then_an_assign() -> None:
    assert [p.suffix for p in KMeans.parts(KMeansConfig())] == ["fit", "assign"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(1, 6), st.integers(0, 10**6))
def test_assign_agrees_with_brute_force(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, c = unit(rng.standard_normal((n, 5))), unit(rng.standard_normal((k, 5)))
    artifact = pa.table({"cluster_id": pa.array(np.arange(k) * 10, pa.int64()), "centroid": embedding_array(c)})
    out = ClusterAssign(KMeansConfig(), artifact)(doc_table(x))
    sims = x.astype(np.float64) @ c.T.astype(np.float64)
    got = np.asarray(out["cluster_id"].to_pylist()) // 10
    assert np.allclose(sims[np.arange(n), got], sims.max(axis=1), atol=1e-6)
    assert np.allclose(out["cluster_distance"].to_numpy(), 1 - sims.max(axis=1), atol=1e-6)


def test_device_auto_trains_on_the_cpu_where_torch_sees_no_gpu() -> None:
    table = doc_table(clustered(3_000, 16, 6, 0.3, seed=5))
    auto, auto_metrics = fit(table, KMeansConfig(k=5, niter=5))
    cpu, cpu_metrics = fit(table, KMeansConfig(k=5, niter=5, device="cpu"))
    if not gpu_visible():  # CI
        assert auto.equals(cpu) and auto_metrics["gpus"] == 0
    assert cpu_metrics["gpus"] == 0


def test_device_cuda_without_a_gpu_says_how_to_get_one() -> None:
    if gpu_visible():
        pytest.skip("torch sees a GPU here")  # never on CI
    with pytest.raises(RuntimeError, match="device: cuda.*num_gpus"):
        fit(doc_table(clustered(500, 8, 2, 0.3, seed=6)), KMeansConfig(k=2, niter=2, device="cuda"))


def test_the_gpu_path_gives_the_cpu_centroids(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch path, run on torch's CPU in place of a GPU, against FAISS on the CPU."""
    import operators.embedding.kmeans as kmeans
    import operators.embedding.lloyd_torch as lloyd

    real = lloyd.lloyd_torch
    monkeypatch.setattr(kmeans, "_on_gpu", lambda device: device != "cpu")
    monkeypatch.setattr(lloyd, "lloyd_torch", lambda x, init, niter, device: real(x, init, niter, "cpu"))
    table = doc_table(clustered(8_000, 16, 8, 0.2, seed=9))
    gpu, gpu_metrics = fit(table, KMeansConfig(k=20, niter=10))
    cpu, cpu_metrics = fit(table, KMeansConfig(k=20, niter=10, device="cpu"))
    assert gpu_metrics["gpus"] == 1 and cpu_metrics["gpus"] == 0
    a, _ = embedding_matrix(gpu["centroid"], "centroid")
    b, _ = embedding_matrix(cpu["centroid"], "centroid")
    assert np.abs(a - b).max() < 1e-5
    assert gpu_metrics["objective"] == pytest.approx(cpu_metrics["objective"], rel=1e-5)
