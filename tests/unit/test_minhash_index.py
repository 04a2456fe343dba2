"""The index primitives: Bloom filter math, matching against index rows, and keep with matches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from operators.base import FILE_COLUMN
from operators.dedup import minhash_math as mm
from operators.dedup.lsh import BAND, HASH, SCOPE
from operators.dedup.minhash_config import COMPONENT, MinhashDedupConfig
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.minhash_index import (PRIOR_ID, PRIOR_MATCH, AssignPrior, BloomProbe, IndexMatch,
                                           bloom_add, bloom_contains, bloom_parameters, bloom_update,
                                           index_rows, sketch_similarity)
from operators.dedup.near_keep import CLUSTER_ID, CLUSTER_SIZE, KEEP, VerifyKeep

CONFIG = MinhashDedupConfig(index={"name": "web"})
BLOOM = MinhashDedupConfig(index={"name": "web", "form": "bloom", "bloom_capacity": 2000, "bloom_fp_rate": 1e-3})


def words(seed: int, n: int = 300) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"w{i}" for i in rng.integers(0, 5000, n)]


def signed(texts: list[str], ids: list[str], config: MinhashDedupConfig = CONFIG) -> pa.Table:
    docs = pa.table({"id": ids, "text": texts, "source": ["web"] * len(ids)})
    return MinhashSignature(config)(docs)


def test_bloom_has_no_false_negatives_and_about_its_false_positive_rate() -> None:
    m_bits, k = bloom_parameters(BLOOM)
    bits = np.zeros(m_bits // 8, dtype=np.uint8)
    rng = np.random.default_rng(0)
    members = rng.integers(0, 2**63, 2000, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    bloom_add(bits, members, m_bits, k)
    assert bloom_contains(bits, members, m_bits, k).all()
    others = rng.integers(0, 2**63, 200_000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    rate = bloom_contains(bits, others, m_bits, k).mean()
    assert 0.2e-3 < rate < 3e-3  # sized for 1e-3 at capacity


def test_sketch_similarity_estimates_jaccard() -> None:
    base = words(1)
    edited = base[:240] + words(2, 60)
    table = signed([" ".join(base), " ".join(edited)], ["a", "b"])
    config = CONFIG
    from operators.dedup.minhash_config import shingle_sets

    sets = shingle_sets(table["text"], config)
    truth = mm.jaccard(sets.doc(0), sets.doc(1))
    estimate = sketch_similarity(table["dedup_minhash_sketch"], np.array([0]), np.array([1]), config.num_perm)[0]
    assert abs(estimate - truth) < 0.15


def _match(index_docs: pa.Table, new_docs: pa.Table, config: MinhashDedupConfig = CONFIG) -> pa.Table:
    """What jobs/ does: project both sides, sort by key, one call."""
    op = IndexMatch(config)
    rows = pa.concat_tables([
        op.project(new_docs.append_column(FILE_COLUMN, pa.array(["part-1"] * new_docs.num_rows))),
        op.state_project(index_rows(index_docs, config))])
    return op(rows.sort_by([(SCOPE, "ascending"), (BAND, "ascending"), (HASH, "ascending"), ("id", "ascending")]))


def test_index_match_finds_near_copies_and_verifies_them() -> None:
    a, b = words(3), words(4)
    near = list(a)
    near[100] = "changed"
    far = [w if i % 2 else "x" for i, w in enumerate(b)]
    earlier = signed([" ".join(a), " ".join(b)], ["a-1", "a-2"])
    new = signed([" ".join(near), " ".join(far), " ".join(words(5))], ["n-near", "n-far", "n-fresh"])
    matches = _match(earlier, new)
    assert matches.to_pylist() == [{"id": "n-near", FILE_COLUMN: "part-1", PRIOR_ID: "a-1"}]
    # a document an earlier run removed (keep false) is not in the index
    removed = earlier.append_column(KEEP, pa.array([False, True]))
    assert _match(removed, new).num_rows == 0


def test_unverified_match_takes_every_bucket_sharer() -> None:
    config = MinhashDedupConfig(index={"name": "web"}, verify=False, lsh={"bands": 56, "rows": 2})
    a = words(6)
    half = a[:150] + words(7, 150)  # Jaccard about 1/3: shares 2-row bands, fails verification
    earlier, new = signed([" ".join(a)], ["a"], config), signed([" ".join(half)], ["n"], config)
    assert _match(earlier, new, config)["id"].to_pylist() == ["n"]
    verified = MinhashDedupConfig(index={"name": "web"}, lsh={"bands": 56, "rows": 2})
    assert _match(signed([" ".join(a)], ["a"], verified), signed([" ".join(half)], ["n"], verified),
                  verified).num_rows == 0


def test_assign_prior_takes_the_smallest_match_per_document() -> None:
    artifact = pa.table({"id": ["x", "x", "y"], FILE_COLUMN: ["f"] * 3, PRIOR_ID: ["p2", "p1", "p3"]})
    out = AssignPrior(CONFIG, artifact=artifact)(pa.table({"id": ["x", "y", "z"]}))
    assert out[PRIOR_MATCH].to_pylist() == [True, True, False]
    assert out[PRIOR_ID].to_pylist() == ["p1", "p3", None]


def test_bloom_probe_marks_documents_whose_bands_are_indexed() -> None:
    a = words(8)
    earlier = signed([" ".join(a)], ["a"], BLOOM)
    table = bloom_update(None, earlier, BLOOM)
    new = signed([" ".join(a), " ".join(words(9)), ""], ["same", "other", "empty"], BLOOM)
    out = BloomProbe(BLOOM, artifact=table)(new)
    assert out[PRIOR_MATCH].to_pylist() == [True, False, False]
    assert out[PRIOR_ID].null_count == 3
    assert BloomProbe(BLOOM, artifact=None)(new)[PRIOR_MATCH].to_pylist() == [False] * 3


@pytest.mark.parametrize("component", ["c", None])
def test_keep_removes_index_matches_and_never_keeps_through_them(component: str | None) -> None:
    texts = [" ".join(words(10))] * 3
    table = pa.table({"id": ["d1", "d2", "d3"], "text": texts, COMPONENT: [component] * 3,
                      PRIOR_MATCH: [True, False, False], PRIOR_ID: ["old", None, None]})
    table = MinhashSignature(CONFIG)(table)  # keep reads the bands and sketches
    op = VerifyKeep(CONFIG)
    out = op(table).to_pydict()
    assert out[KEEP] == ([False, True, False] if component else [False, True, True])
    assert out[CLUSTER_ID] == (["old", "d2", "d2"] if component else ["old", "d2", "d3"])
    assert out[CLUSTER_SIZE][0] is None
    assert op.metrics()["index_matches"] == 1


def test_composite_parts_follow_the_index_form() -> None:
    from operators.dedup.minhash import MinhashDedup

    def suffixes(config: MinhashDedupConfig) -> list[str]:
        return [p.suffix for p in MinhashDedup.parts(config)]

    assert suffixes(MinhashDedupConfig()) == ["signature", "buckets", "components", "assign", "keep", "apply"]
    assert suffixes(CONFIG)[-4:] == ["index_match", "index_assign", "keep", "apply"]
    assert suffixes(BLOOM)[-3:] == ["index_probe", "keep", "apply"]
    assert MinhashSignature.columns_written(CONFIG) == ("dedup_minhash_bands", "dedup_minhash_sketch")
    # keep's pre-filter reads the sketches too: only without verify does a bloom index go without
    assert MinhashSignature.columns_written(BLOOM) == ("dedup_minhash_bands", "dedup_minhash_sketch")
    assert MinhashSignature.columns_written(BLOOM.model_copy(update={"verify": False})) == ("dedup_minhash_bands",)
