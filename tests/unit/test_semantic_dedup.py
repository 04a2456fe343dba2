"""semantic_dedup: blocked SemDeDup equals the unblocked computation; recall on planted copies."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from operators.embedding.kmeans import ClusterAssign, KMeansConfig, KMeansFit
from operators.embedding.semantic_dedup import SemanticDedup, SemanticDedupConfig
from tests.support.embedding_vectors import clustered, doc_table, unit, with_near_copies


def unblocked(x: np.ndarray, threshold: float, criterion: str) -> tuple[list[bool], list[float], list[int]]:
    """The definitions, with the whole n x n matrix: keep, max_sim, keeper (rows in rank order)."""
    n = len(x)
    sims = (x.astype(np.float64) @ x.astype(np.float64).T).astype(np.float32)
    lower = np.where(np.tri(n, k=-1, dtype=bool), sims, -np.inf)  # sim(i, j) for j ranked before i
    pair = np.maximum(lower, lower.T)
    np.fill_diagonal(pair, -np.inf)
    keep, keeper = [True] * n, list(range(n))
    for i in range(n):
        earlier = [j for j in range(i) if criterion == "ranked" or keep[j]]
        if earlier:
            j = max(earlier, key=lambda j: (lower[i, j], -j))
            if lower[i, j] > threshold:
                keep[i], keeper[i] = False, keeper[j]
    return keep, pair.max(axis=1).tolist(), keeper


def dedup(table: pa.Table, **config: object) -> pa.Table:
    return SemanticDedup(SemanticDedupConfig(**config))(table)


def clustered_table(x: np.ndarray, clusters: np.ndarray, distance: np.ndarray) -> pa.Table:
    return doc_table(x, cluster_id=pa.array(clusters, pa.int64()), cluster_distance=pa.array(distance, pa.float32()))


@pytest.mark.parametrize("criterion", ["kept", "ranked"])
@pytest.mark.parametrize("block_rows", [1, 3, 16, 4096])
def test_blocked_equals_unblocked_exactly(criterion: str, block_rows: int) -> None:
    rng = np.random.default_rng(5)
    x, _ = with_near_copies(clustered(120, 16, 3, 0.2, seed=5), 80, 0.03, seed=6)
    clusters = rng.integers(0, 3, len(x))
    distance = rng.random(len(x)).astype(np.float32)
    out = dedup(clustered_table(x, clusters, distance), eps=0.02, criterion=criterion, block_rows=block_rows)
    for c in range(3):
        rows = np.flatnonzero(clusters == c)
        rows = rows[np.lexsort((rows, -distance[rows]))]  # farthest first, ties by id (ids follow rows)
        keep, max_sim, keeper = unblocked(x[rows], 0.98, criterion)
        assert out["dedup_semantic_keep"].take(pa.array(rows)).to_pylist() == keep
        assert out["dedup_semantic_max_sim"].take(pa.array(rows)).to_numpy().tolist() == \
            np.float32(max_sim).tolist()
        assert out["dedup_semantic_group"].take(pa.array(rows)).to_pylist() == \
            [out["id"][int(rows[k])].as_py() for k in keeper]
    assert not all(out["dedup_semantic_keep"].to_pylist())


def test_recall_on_planted_near_copies_through_kmeans() -> None:
    base = clustered(4_000, 48, 30, 0.15, seed=7)  # 30 topics; copies: cos about 0.99 to their origin
    x, _ = with_near_copies(base, 1_000, 0.02, seed=8)
    table = doc_table(x)
    config = KMeansConfig(k=30, niter=10)
    fitted = KMeansFit(config).fit(iter([table]))
    table = SemanticDedup(SemanticDedupConfig(eps=0.05))(ClusterAssign(config, fitted)(table))
    sims = x @ x.T
    i, j = np.nonzero(np.triu(sims > 0.95, k=1))  # brute force over the whole corpus
    assert len(i) >= 1_000
    group = np.asarray(table["dedup_semantic_group"].to_pylist())
    found = group[i] == group[j]
    assert found.mean() >= 0.99
    clusters = table["cluster_id"].to_numpy()
    assert found[clusters[i] == clusters[j]].all()  # misses are only pairs k-means split apart
    removed = ~np.asarray(table["dedup_semantic_keep"].to_pylist())
    assert removed.sum() == pytest.approx(1_000, rel=0.05)


def test_keep_policies_choose_farthest_closest_or_highest() -> None:
    x = unit(np.array([[1, 0.01], [1, 0.02], [1, 0.03]], np.float32))
    table = clustered_table(x, np.zeros(3, np.int64), np.array([0.2, 0.3, 0.1], np.float32))
    table = table.append_column("quality", pa.array([0.5, None, 0.9]))
    assert dedup(table)["dedup_semantic_keep"].to_pylist() == [False, True, False]
    assert dedup(table, keep="closest")["dedup_semantic_keep"].to_pylist() == [False, False, True]
    out = dedup(table, keep="max:quality")
    assert out["dedup_semantic_keep"].to_pylist() == [False, False, True]
    assert out["dedup_semantic_group"].to_pylist() == ["d00002"] * 3


def test_kept_and_ranked_criteria_differ_on_a_chain() -> None:
    theta = 0.25  # cos(theta) = 0.969 > 0.95 > cos(2 theta) = 0.878
    x = np.array([[np.cos(k * theta), np.sin(k * theta)] for k in range(3)], np.float32)
    table = clustered_table(x, np.zeros(3, np.int64), np.array([0.3, 0.2, 0.1], np.float32))
    kept = dedup(table, eps=0.05)
    assert kept["dedup_semantic_keep"].to_pylist() == [True, False, True]
    ranked = dedup(table, eps=0.05, criterion="ranked")
    assert ranked["dedup_semantic_keep"].to_pylist() == [True, False, False]
    assert ranked["dedup_semantic_group"].to_pylist() == ["d00000"] * 3
    assert kept["dedup_semantic_prior_sim"].to_pylist()[1:] == pytest.approx([np.cos(theta)] * 2, abs=1e-6)
    assert kept["dedup_semantic_max_sim"].to_pylist() == pytest.approx([np.cos(theta)] * 3, abs=1e-6)


def test_singletons_and_documents_without_a_cluster_are_kept() -> None:
    table = clustered_table(unit(np.ones((2, 4), np.float32)), np.array([1, 2]), np.zeros(2, np.float32))
    table = table.set_column(2, "cluster_id", pa.array([1, None], pa.int64()))
    out = dedup(table)
    assert out["dedup_semantic_keep"].to_pylist() == [True, True]
    assert out["dedup_semantic_max_sim"].to_pylist() == [None, None]
    assert out["dedup_semantic_group"].to_pylist() == ["d00000", "d00001"]
    assert dedup(table.slice(0, 0)).num_rows == 0


def test_bad_keep_policy_fails_at_load() -> None:
    with pytest.raises(ValidationError, match="farthest, closest or max:<column>"):
        SemanticDedupConfig(keep="random")
    assert SemanticDedup.columns_read(SemanticDedupConfig(keep="max:quality_score"))[-1] == "quality_score"


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10**6), st.sampled_from(["kept", "ranked"]), st.integers(1, 9))
def test_every_removed_document_duplicates_a_kept_one(n: int, seed: int, criterion: str, block: int) -> None:
    rng = np.random.default_rng(seed)
    x, _ = with_near_copies(unit(rng.standard_normal((n, 3))), n, 0.1, seed=seed)
    table = clustered_table(x, rng.integers(0, 2, len(x)), rng.random(len(x)).astype(np.float32))
    out = dedup(table, eps=0.05, criterion=criterion, block_rows=block)
    keep = np.asarray(out["dedup_semantic_keep"].to_pylist())
    ids = out["id"].to_pylist()
    keeper = np.asarray([ids.index(g) for g in out["dedup_semantic_group"].to_pylist()])
    assert keep[keeper].all()
    assert (keep == (keeper == np.arange(len(x)))).all()
    clusters = table["cluster_id"].to_numpy()
    assert (clusters[keeper] == clusters).all()
    sims = x.astype(np.float64) @ x.T.astype(np.float64)
    if criterion == "kept":  # removed: above the threshold with its keeper; kept: with no other kept one
        assert (sims[~keep, keeper[~keep]] > 0.95 - 1e-6).all()
        same = (clusters[:, None] == clusters[None, :]) & keep[:, None] & keep[None, :]
        np.fill_diagonal(same, False)
        assert (sims[same] <= 0.95 + 1e-6).all()


# --- eps from a target removal fraction (semantic_target.py) ------------------------------------

def test_target_removal_needs_the_ranked_criterion() -> None:
    with pytest.raises(ValidationError, match="criterion: ranked"):
        SemanticDedupConfig(target_removal=0.1)
    SemanticDedupConfig(target_removal=0.1, criterion="ranked")


def test_the_composite_is_one_stage_without_a_target_and_three_with_one() -> None:
    from operators.embedding.semantic_target import SemanticDedupApply, SemanticDedupComposite, SemanticDedupEps

    assert [(p.suffix, p.operator) for p in SemanticDedupComposite.parts(SemanticDedupConfig())] == \
        [("", SemanticDedup)]
    parts = SemanticDedupComposite.parts(SemanticDedupConfig(target_removal=0.2, criterion="ranked"))
    assert [(p.suffix, p.operator) for p in parts] == [("", SemanticDedup), ("eps", SemanticDedupEps),
                                                        ("apply", SemanticDedupApply)]


def test_threshold_leaves_at_most_the_target_above_it() -> None:
    from operators.embedding.semantic_target import _BINS, _bins, threshold_for

    values = np.random.default_rng(3).uniform(0.5, 1.0, 10_000)
    counts = np.bincount(_bins(values), minlength=_BINS)
    for target in (0.01, 0.1, 0.37):
        t, removed = threshold_for(counts, 12_000, target)  # 2,000 documents without a prior_sim
        assert removed == int((values > t).sum()) <= round(target * 12_000)
        assert int((values > t - 1e-6).sum()) > round(target * 12_000)  # the next edge down is too low


@pytest.mark.parametrize("target", [0.05, 0.2, 0.5])
def test_target_removal_removes_that_fraction_as_the_ranked_rule_would(target: float) -> None:
    from operators.embedding.semantic_target import SemanticDedupApply, SemanticDedupEps

    rng = np.random.default_rng(21)
    x, _ = with_near_copies(clustered(600, 16, 4, 0.2, seed=21), 400, 0.05, seed=22)
    table = clustered_table(x, rng.integers(0, 4, len(x)), rng.random(len(x)).astype(np.float32))
    config = SemanticDedupConfig(target_removal=target, criterion="ranked")
    pairs = SemanticDedup(config)(table)
    assert all(pairs["dedup_semantic_keep"].to_pylist())  # decided after the fit
    fit = SemanticDedupEps(config)
    artifact = fit.fit(iter([pairs.slice(0, 300), pairs.slice(300)]))
    out = SemanticDedupApply(config, artifact)(pairs)
    keep = np.asarray(out["dedup_semantic_keep"].to_pylist())
    removed = int((~keep).sum())
    assert removed == artifact["planned_removed"][0].as_py() == fit.metrics()["semantic_planned_removed"]
    assert round(target * len(x)) - 3 <= removed <= round(target * len(x))  # ties in one 1e-6 bin at most
    eps = artifact["eps"][0].as_py()
    # the same decisions as the ranked rule run with that eps (up to values within 1e-6 of it)
    direct = SemanticDedup(SemanticDedupConfig(eps=eps, criterion="ranked"))(table)
    prior = pairs["dedup_semantic_prior_sim"].to_numpy(zero_copy_only=False)
    clear = np.isnan(prior) | (np.abs(prior - (1 - eps)) > 1e-5)
    assert (keep == np.asarray(direct["dedup_semantic_keep"].to_pylist()))[clear].all()
    # a removed document's group is its most similar earlier-ranked member
    group, prior_id = out["dedup_semantic_group"].to_pylist(), out["dedup_semantic_prior_id"].to_pylist()
    ids = out["id"].to_pylist()
    assert all(g == (i if k else p) for g, i, k, p in zip(group, ids, keep, prior_id))
