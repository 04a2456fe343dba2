"""Properties of minhash_dedup's primitives chained in-process (no Ray): idempotence, and
every removal backed by a verified link to its cluster, within max_hops of a kept document."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.base import FILE_COLUMN
from operators.dedup import minhash_math as mm
from operators.dedup.lsh import AssignComponent, LshBuckets, LshComponents
from operators.dedup.minhash_config import MinhashDedupConfig, verification_sets
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.near_keep import KEEP, KeepApply, VerifyKeep

CONFIG = MinhashDedupConfig(threshold=0.7, num_perm=64)
VOCAB = [f"w{i}" for i in range(400)]


def dedup(table: pa.Table, config: MinhashDedupConfig = CONFIG) -> pa.Table:
    """The six primitives as jobs/ chains them, on one table standing for one file."""
    table = table.append_column(FILE_COLUMN, pa.array(["f"] * table.num_rows))
    signed = MinhashSignature(config)(table)
    buckets = LshBuckets(config)
    projected = buckets.project(signed)
    edges = buckets(projected.sort_by([(k, "ascending") for k in (*buckets.group_key(), "id")]))
    components = LshComponents(config).fit(iter([edges]))
    assigned = AssignComponent(config, artifact=components)(signed)
    keep = VerifyKeep(config)
    candidates = assigned.filter(pa.compute.is_valid(assigned[keep.group_key()[0]]))  # the others bypass
    marks = keep(candidates.sort_by([(keep.group_key()[0], "ascending"), ("id", "ascending")]))
    return KeepApply(config, artifact=marks)(assigned).drop_columns([FILE_COLUMN])


@st.composite
def corpora(draw: st.DrawFn) -> pa.Table:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    texts = [" ".join(rng.choice(VOCAB, size=int(rng.integers(20, 120)))) for _ in range(draw(st.integers(2, 12)))]
    for _ in range(draw(st.integers(0, 8))):  # near copies: a few words changed
        words = texts[int(rng.integers(len(texts)))].split()
        for i in rng.integers(len(words), size=int(rng.integers(0, 3))):
            words[i] = str(rng.choice(VOCAB))
        texts.append(" ".join(words))
    ids = [f"d{i:03d}" for i in rng.permutation(len(texts))]
    sources = [str(rng.choice(["a", "b"])) for _ in texts]
    return pa.table({"id": ids, "text": texts, "source": sources})


@settings(max_examples=40, deadline=None, derandomize=True)
@given(corpora())
def test_dedup_is_idempotent(corpus: pa.Table) -> None:
    first = dedup(corpus)
    kept = first.filter(first[KEEP]).select(["id", "text", "source"])
    second = dedup(kept)
    assert all(second[KEEP].to_pylist())


@pytest.mark.parametrize("max_hops", [1, 2])
@settings(max_examples=40, deadline=None, derandomize=True)
@given(corpora())
def test_every_removal_is_linked_to_its_cluster_within_max_hops_of_its_keeper(max_hops: int, corpus: pa.Table) -> None:
    """1 link: a kept partner at the threshold; n links: a partner at the threshold in its
    cluster, and at least 1 - n (1 - threshold) like the keeper (Jaccard distance is a metric)."""
    config = CONFIG.model_copy(update={"max_hops": max_hops})
    out = dedup(corpus, config)
    sets = verification_sets(out["text"], config)
    rows = out.to_pylist()
    index = {r["id"]: i for i, r in enumerate(rows)}
    for i, row in enumerate(rows):
        if not row[KEEP]:
            keeper = index[row["dedup_minhash_cluster_id"]]
            assert rows[keeper][KEEP] and rows[keeper]["source"] == row["source"]
            assert mm.jaccard(sets.doc(i), sets.doc(keeper)) >= 1 - max_hops * (1 - config.threshold) - 1e-9
            cluster = [k for k, r in enumerate(rows) if k != i and r["dedup_minhash_cluster_id"] == row["dedup_minhash_cluster_id"]]
            assert any(mm.jaccard(sets.doc(i), sets.doc(k)) >= config.threshold for k in cluster)
            if max_hops == 1:
                assert mm.jaccard(sets.doc(i), sets.doc(keeper)) >= config.threshold
