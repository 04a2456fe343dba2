"""cluster_prune: ssl_prototypes, scip and cluster_balanced remove exactly what they promise."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.embedding.cluster_prune import ClusterPrune, ClusterPruneApply, ClusterPruneConfig, ClusterPrunePlan
from operators.embedding.vectors import id_hashes


def corpus(n: int = 3_000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 12, n) ** 2  # uneven cluster sizes, sparse ids
    return pa.table({"id": [f"d{i:05d}" for i in range(n)], "cluster_id": pa.array(clusters, pa.int64()),
                     "cluster_distance": pa.array(rng.random(n), pa.float32())})


def prune(table: pa.Table, rows: int = 700, **config: object) -> tuple[pa.Table, ClusterPrunePlan]:
    cfg = ClusterPruneConfig(**config)
    plan = ClusterPrunePlan(cfg)
    artifact = plan.fit(iter(pa.Table.from_batches([b]) for b in table.to_batches(max_chunksize=rows)))
    apply = ClusterPruneApply(cfg, artifact)
    return pa.concat_tables(apply(pa.Table.from_batches([b])) for b in table.to_batches(max_chunksize=rows)), plan


def reasons(out: pa.Table) -> np.ndarray:
    return np.asarray(out["drop_reason"].to_pylist(), dtype=object)


def test_ssl_prototypes_drops_the_fraction_nearest_their_centroid() -> None:
    table = corpus()
    out, _ = prune(table, policy="ssl_prototypes", fraction=0.25)
    dropped = reasons(out) == "cluster:ssl_prototypes"
    assert dropped.sum() == 750
    distance = table["cluster_distance"].to_numpy()
    assert distance[dropped].max() <= distance[~dropped].min()


def test_scip_takes_most_from_the_smallest_clusters_then_the_farthest() -> None:
    table = corpus()
    out, _ = prune(table, policy="scip", fraction=0.2, small_share=0.8)
    why = reasons(out)
    assert (why != None).sum() == 600  # noqa: E711
    clusters = table["cluster_id"].to_numpy()
    sizes = dict(zip(*np.unique(clusters, return_counts=True)))
    whole = {c for c in sizes if (why[clusters == c] == "cluster:scip_small_cluster").all()}
    assert whole and max(sizes[c] for c in whole) <= min(sizes[c] for c in sizes if c not in whole)
    assert sum(sizes[c] for c in whole) <= 480 < sum(sizes[c] for c in whole) + min(
        sizes[c] for c in sizes if c not in whole)
    far = why == "cluster:scip_far"
    rest = ~np.isin(clusters, list(whole))
    distance = table["cluster_distance"].to_numpy()
    # outside the boundary cluster, the far removals are the farthest of what remains
    boundary = min((c for c in sizes if c not in whole), key=lambda c: (sizes[c], c))
    assert distance[far & (clusters != boundary)].min() >= distance[rest & ~far & (clusters != boundary)].max()


@pytest.mark.parametrize("cap", [None, 100])
def test_cluster_balanced_caps_each_cluster_by_id_hash(cap: int | None) -> None:
    table = corpus()
    out, plan = prune(table, policy="cluster_balanced", fraction=0.3, cap=cap)
    why = reasons(out)
    clusters, hashes = table["cluster_id"].to_numpy(), id_hashes(table["id"])
    cap_used = plan.metrics()["cap"]
    for c in np.unique(clusters):
        rows = clusters == c
        kept = rows & (why == None)  # noqa: E711
        assert kept.sum() == min(rows.sum(), cap_used)
        if (rows & ~kept).any():
            assert hashes[kept].max() < hashes[rows & ~kept].min()
    if cap is None:  # the largest cap that removes at least 30 %
        sizes = np.unique(clusters, return_counts=True)[1]
        assert np.minimum(sizes, cap_used).sum() <= 2_100 < np.minimum(sizes, cap_used + 1).sum()


def test_cluster_size_for_every_document_and_no_cluster_is_never_pruned() -> None:
    table = corpus(200)
    table = table.set_column(1, "cluster_id", pa.array([None] + table["cluster_id"].to_pylist()[1:], pa.int64()))
    table = table.append_column("drop_reason", pa.array(["quality:x"] + [None] * 199, pa.string()))
    out, _ = prune(table, policy="ssl_prototypes", fraction=1.0)
    assert out["cluster_size"][0].as_py() is None and out["drop_reason"][0].as_py() == "quality:x"
    clusters = table["cluster_id"].to_pylist()
    assert out["cluster_size"].to_pylist()[1:] == [clusters.count(c) for c in clusters[1:]]
    assert set(out["drop_reason"].to_pylist()[1:]) == {"cluster:ssl_prototypes"}


def test_plan_does_not_depend_on_row_order_and_empty_input_prunes_nothing() -> None:
    table = corpus(500)
    a, _ = prune(table, rows=500, policy="scip", fraction=0.3)
    shuffled = table.take(pa.array(np.random.default_rng(1).permutation(500)))
    b, _ = prune(shuffled, rows=77, policy="scip", fraction=0.3)
    assert a.sort_by("id").equals(b.sort_by("id"))
    artifact = ClusterPrunePlan(ClusterPruneConfig()).fit(iter([table.slice(0, 0)]))
    assert artifact.num_rows == 0
    out = ClusterPruneApply(ClusterPruneConfig(), artifact)(table)
    assert out["drop_reason"].null_count == 500 and out["cluster_size"].null_count == 500
    assert [p.suffix for p in ClusterPrune.parts(ClusterPruneConfig())] == ["plan", "apply"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300), st.floats(0, 1), st.floats(0, 1), st.sampled_from(["ssl_prototypes", "scip"]),
       st.integers(0, 1000))
def test_removes_exactly_the_fraction_and_more_for_a_larger_one(n: int, f1: float, f2: float, policy: str,
                                                                 seed: int) -> None:
    table = corpus(n, seed)
    low, high = sorted((f1, f2))
    a, _ = prune(table, policy=policy, fraction=low)
    b, _ = prune(table, policy=policy, fraction=high)
    assert (reasons(a) != None).sum() == round(low * n)  # noqa: E711
    assert (reasons(b) != None).sum() == round(high * n)  # noqa: E711
    if policy == "ssl_prototypes":  # monotone: a larger fraction removes a superset
        assert set(np.flatnonzero(reasons(a) != None)) <= set(np.flatnonzero(reasons(b) != None))  # noqa: E711
