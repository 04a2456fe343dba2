"""Properties of minhash_dedup's primitives chained in-process (no Ray): idempotence, and
every removal backed by a verified kept document."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.base import FILE_COLUMN
from operators.dedup import minhash_math as mm
from operators.dedup.lsh import AssignComponent, LshBuckets, LshComponents
from operators.dedup.minhash_config import MinhashDedupConfig, shingle_sets
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.near_keep import KEEP, KeepApply, VerifyKeep

CONFIG = MinhashDedupConfig(threshold=0.7, num_perm=64)
VOCAB = [f"w{i}" for i in range(400)]


def dedup(table: pa.Table) -> pa.Table:
    """The six primitives as jobs/ chains them, on one table standing for one file."""
    table = table.append_column(FILE_COLUMN, pa.array(["f"] * table.num_rows))
    signed = MinhashSignature(CONFIG)(table)
    buckets = LshBuckets(CONFIG)
    projected = buckets.project(signed)
    edges = buckets(projected.sort_by([(k, "ascending") for k in (*buckets.group_key(), "id")]))
    components = LshComponents(CONFIG).fit(iter([edges]))
    assigned = AssignComponent(CONFIG, artifact=components)(signed)
    keep = VerifyKeep(CONFIG)
    candidates = assigned.filter(pa.compute.is_valid(assigned[keep.group_key()[0]]))  # the others bypass
    marks = keep(candidates.sort_by([(keep.group_key()[0], "ascending"), ("id", "ascending")]))
    return KeepApply(CONFIG, artifact=marks)(assigned).drop_columns([FILE_COLUMN])


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


@settings(max_examples=40, deadline=None, derandomize=True)
@given(corpora())
def test_every_removal_has_a_similar_kept_document_in_its_source(corpus: pa.Table) -> None:
    out = dedup(corpus)
    sets = shingle_sets(out["text"], CONFIG)
    rows = out.to_pylist()
    index = {r["id"]: i for i, r in enumerate(rows)}
    for i, row in enumerate(rows):
        if not row[KEEP]:
            keeper = index[row["dedup_minhash_cluster_id"]]
            assert rows[keeper][KEEP] and rows[keeper]["source"] == row["source"]
            assert mm.jaccard(sets.doc(i), sets.doc(keeper)) >= CONFIG.threshold
