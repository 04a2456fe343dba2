"""The minhash_dedup primitives on literal tables: config, signature, star edges, components,
assignment and verified keeping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pydantic import ValidationError

from operators.base import FILE_COLUMN
from operators.dedup.lsh import CANDIDATES, COMPONENT, EDGE_SCHEMA, AssignComponent, LshBuckets, LshComponents
from operators.dedup.minhash import MinhashDedup
from operators.dedup.minhash_config import BANDS, MinhashDedupConfig
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.near_keep import CLUSTER_ID, CLUSTER_SIZE, KEEP, KeepApply, VerifyKeep

WORDS = ("the quick brown fox jumps over the lazy dog while seven wizards quietly hex "
         "every jolly pilot and the band plays on through the night").split()


def doc(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n))


def test_config_bands_and_rows_go_together() -> None:
    with pytest.raises(ValidationError, match="go together"):
        MinhashDedupConfig(lsh={"bands": 4})
    with pytest.raises(ValidationError, match="exceeds num_perm"):
        MinhashDedupConfig(num_perm=64, lsh={"bands": 9, "rows": 8})
    assert MinhashDedupConfig(lsh={"bands": 14, "rows": 8}).banding() == (14, 8)


def test_verify_favors_recall_in_the_banding() -> None:
    verified, unverified = MinhashDedupConfig(verify=True), MinhashDedupConfig(verify=False)
    assert verified.banding() == (18, 6)  # candidate probability 0.9958 at 0.8 with 112 permutations
    assert MinhashSignature.describe(verified)["candidate_probability_at_threshold"] > \
        MinhashSignature.describe(unverified)["candidate_probability_at_threshold"]


def test_composite_parts_in_order() -> None:
    parts = MinhashDedup.parts(MinhashDedupConfig())
    assert [p.suffix for p in parts] == ["signature", "buckets", "components", "assign", "keep", "apply"]
    assert [p.operator.kind for p in parts] == ["map", "group", "fit", "map", "group", "map"]


def test_signature_copies_share_bands_and_empty_docs_are_null() -> None:
    text = doc(60)
    batch = pa.table({"id": ["a", "b", "c", "d"], "text": [text, text.upper() + " !!", doc(60, 1), "  ...  "]})
    out = MinhashSignature(MinhashDedupConfig())(batch)[BANDS].to_pylist()
    assert out[0] == out[1]  # case and punctuation are normalized away
    assert out[0] != out[2]
    assert out[3] is None
    assert len(out[0]) == MinhashDedupConfig().banding()[0] == 18


def buckets_input(rows: list[tuple[str, str, list[int] | None, str]]) -> pa.Table:
    ids, sources, bands, files = zip(*[(i, s, b, f) for i, s, b, f in rows])
    band_type = pa.list_(pa.uint64(), 2)
    return pa.table({"id": list(ids), "source": list(sources), BANDS: pa.array(list(bands), band_type),
                     FILE_COLUMN: list(files)})


def sorted_groups(op: LshBuckets, projected: pa.Table) -> pa.Table:
    return projected.sort_by([(k, "ascending") for k in (*op.group_key(), "id")])


def test_buckets_project_and_star_edges() -> None:
    config = MinhashDedupConfig(lsh={"bands": 2, "rows": 4}, num_perm=8)
    op = LshBuckets(config)
    batch = buckets_input([("d", "web", [1, 2], "f1"), ("b", "web", [1, 3], "f2"), ("a", "web", [1, 2], "f1"),
                           ("c", "web", [9, 2], "f2"), ("e", "books", [1, 2], "f3"), ("z", "web", None, "f1")])
    projected = op.project(batch)
    assert projected.num_rows == 10  # 5 documents with bands x 2 bands; z has none
    edges = op(sorted_groups(op, projected)).sort_by([("src", "ascending"), ("dst", "ascending")])
    # band 0 hash 1 in web: a, b, d -> star to a; band 1 hash 2 in web: a, c, d -> star to a
    assert edges.select(["src", "dst"]).to_pylist() == [
        {"src": "b", "dst": "a"}, {"src": "c", "dst": "a"}, {"src": "d", "dst": "a"}]
    assert {e["src"]: e["src_file"] for e in edges.to_pylist()} == {"b": "f2", "c": "f2", "d": "f1"}


def test_global_scope_joins_sources() -> None:
    op = LshBuckets(MinhashDedupConfig(lsh={"bands": 2, "rows": 4}, num_perm=8, scope="global"))
    batch = buckets_input([("a", "web", [1, 2], "f1"), ("e", "books", [1, 5], "f3")])
    assert op(sorted_groups(op, op.project(batch))).select(["src", "dst"]).to_pylist() == [{"src": "e", "dst": "a"}]


def test_buckets_empty() -> None:
    op = LshBuckets(MinhashDedupConfig())
    assert op(EDGE_SCHEMA.empty_table()).num_rows == 0


def edges(pairs: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"src": [a for a, _ in pairs], "dst": [b for _, b in pairs],
                     "src_file": [f"f-{a}" for a, _ in pairs], "dst_file": [f"f-{b}" for _, b in pairs]})


def test_components_union_transitively_with_min_id_and_size() -> None:
    op = LshComponents(MinhashDedupConfig())
    table = op.fit(iter([edges([("b", "a"), ("c", "b")]), edges([("y", "x"), ("c", "a")])]))
    rows = {r["id"]: (r[COMPONENT], r[CANDIDATES], r[FILE_COLUMN]) for r in table.to_pylist()}
    assert rows == {"a": ("a", 3, "f-a"), "b": ("a", 3, "f-b"), "c": ("a", 3, "f-c"),
                    "x": ("x", 2, "f-x"), "y": ("x", 2, "f-y")}
    assert op.metrics() == {"candidate_edges": 4, "candidate_documents": 5, "candidate_components": 2}


def test_components_of_no_edges() -> None:
    assert LshComponents(MinhashDedupConfig()).fit(iter([])).num_rows == 0


def test_assign_looks_up_the_file_slice() -> None:
    slice_ = pa.table({"id": ["b", "c"], FILE_COLUMN: ["f", "f"], COMPONENT: ["a", "a"], CANDIDATES: [3, 3]})
    out = AssignComponent(MinhashDedupConfig(), artifact=slice_)(pa.table({"id": ["c", "q", "b"]}))
    assert out[COMPONENT].to_pylist() == ["a", None, "a"]
    assert out[CANDIDATES].to_pylist() == [3, 1, 3]
    none = AssignComponent(MinhashDedupConfig(), artifact=None)(pa.table({"id": ["q"]}))
    assert none[COMPONENT].to_pylist() == [None] and none[CANDIDATES].to_pylist() == [1]


def keep_input(rows: list[tuple[str, str, str | None]], config: MinhashDedupConfig | None = None,
               **extra: list) -> pa.Table:
    """keep's input: the rows (id, text, component) and their bands and sketches as the
    signature step of ``config`` writes them (none without verify)."""
    table = pa.table({"id": [r[0] for r in rows], "text": [r[1] for r in rows],
                      COMPONENT: pa.array([r[2] for r in rows], pa.string()), **extra})
    return MinhashSignature(config or MinhashDedupConfig())(table)


def test_verify_keeps_dissimilar_candidates_and_removes_true_copies() -> None:
    base, other = doc(80, 1), doc(80, 2)
    near = base.split()
    near[40] = "zebra"  # one word changed of 80: Jaccard of 5-grams well above 0.8
    table = keep_input([("a", base, "a"), ("b", " ".join(near), "a"), ("c", other, "a"), ("s", doc(50, 3), None)])
    op = VerifyKeep(MinhashDedupConfig())
    out = {r["id"]: r for r in op(table).to_pylist()}
    assert [out[i][KEEP] for i in "abcs"] == [True, False, True, True]  # c: unlike a, kept
    assert out["b"][CLUSTER_ID] == "a" and out["a"][CLUSTER_SIZE] == 2 and out["c"][CLUSTER_SIZE] == 1
    assert out["s"][CLUSTER_ID] == "s" and out["s"][CLUSTER_SIZE] == 1
    # b shares buckets with a and is checked; c shares none (it is in a's component through
    # some other link) and is never compared with a
    assert op.metrics()["verified_pairs"] == 1 and op.metrics()["confirmed_pairs"] == 1


def test_unverified_component_is_one_cluster() -> None:
    table = keep_input([("b", doc(80, 1), "a"), ("a", doc(80, 2), "a")])
    out = VerifyKeep(MinhashDedupConfig(verify=False))(table.drop_columns([BANDS]))
    assert dict(zip(out["id"].to_pylist(), out[KEEP].to_pylist())) == {"a": True, "b": False}


def test_keep_max_column_with_ties_to_smallest_id() -> None:
    text = doc(80, 4)
    table = keep_input([("a", text, "a"), ("b", text, "a"), ("c", text, "a")], score=[0.1, 0.9, 0.9])
    op = VerifyKeep(MinhashDedupConfig(keep="max:score"))
    assert op(table)[KEEP].to_pylist() == [False, True, False]
    assert VerifyKeep.columns_read(MinhashDedupConfig(keep="max:score"))[-1] == "score"


def test_keep_is_independent_of_row_order() -> None:
    text = doc(80, 5)
    rows = [("c", text, "a"), ("a", text, "a"), ("b", doc(80, 6), "a")]
    first = VerifyKeep(MinhashDedupConfig())(keep_input(rows))
    second = VerifyKeep(MinhashDedupConfig())(keep_input(rows[::-1]))
    assert sorted(zip(first["id"].to_pylist(), first[KEEP].to_pylist())) == \
        sorted(zip(second["id"].to_pylist(), second[KEEP].to_pylist()))


def test_apply_marks_what_keep_on_every_document_would() -> None:
    """keep on the candidates alone + apply on the whole file == keep on the whole file,
    with index matches among both candidates and other documents."""
    from operators.dedup.minhash_index import PRIOR_ID, PRIOR_MATCH

    base = doc(80, 1)
    near = base.split()
    near[40] = "zebra"
    rows = [("a", base, "a"), ("b", " ".join(near), "a"), ("c", doc(80, 2), "a"), ("d", base, "d"),
            ("e", base, "d"), ("s", doc(50, 3), None), ("t", doc(50, 4), None), ("u", doc(50, 5), None)]
    prior = {"e": "old-1", "t": "old-2"}
    table = keep_input(rows, **{PRIOR_MATCH: [r[0] in prior for r in rows],
                                PRIOR_ID: pa.array([prior.get(r[0]) for r in rows], pa.string())})
    config = MinhashDedupConfig(index={"name": "idx"})
    whole = VerifyKeep(config)(table)
    candidates = table.filter(pc.is_valid(table[COMPONENT]))
    marks = VerifyKeep(config)(candidates.append_column(FILE_COLUMN, pa.array(["f"] * candidates.num_rows)))
    assert marks.column_names == [FILE_COLUMN, "id", CLUSTER_ID, CLUSTER_SIZE, KEEP]
    applied = KeepApply(config, artifact=marks.drop_columns([FILE_COLUMN]))(table)
    for column in (CLUSTER_ID, CLUSTER_SIZE, KEEP):
        assert applied[column].to_pylist() == whole[column].to_pylist(), column
    assert applied["text"].equals(table["text"])  # the documents themselves are untouched
    alone = KeepApply(config)(table)  # a file without candidates: everyone keeps but index matches
    assert alone[KEEP].to_pylist() == [r[0] not in prior for r in rows]
    assert alone[CLUSTER_ID].to_pylist() == [prior.get(r[0], r[0]) for r in rows]
    assert alone[CLUSTER_SIZE].to_pylist() == [None if r[0] in prior else 1 for r in rows]
    assert KeepApply.columns_read(config) == ("id", PRIOR_MATCH, PRIOR_ID)


def test_signatures_do_not_depend_on_shingle_dedup() -> None:
    from operators.dedup import minhash_math as mm
    from operators.dedup.shingling import word_shingles

    texts = pa.array([doc(200, 7) + " " + doc(200, 7), "a a a a a a a a", "", doc(3, 8)])
    perms = mm.Permutations(64, 1, "fast")
    as_sets = mm.signatures(word_shingles(texts, 5, "fast"), perms)
    raw = mm.signatures(word_shingles(texts, 5, "fast", as_sets=False), perms)
    assert np.array_equal(as_sets, raw)


def test_keep_shingles_each_distinct_text_once_with_the_same_sets() -> None:
    from operators.dedup.minhash_config import verification_sets
    from operators.dedup.near_keep import _RowSets

    config = MinhashDedupConfig()
    texts = ["the same words over and over " * 5, None, "other words that differ a little here " * 4, ""]
    column = pa.chunked_array([pa.array(texts[:3] + texts[:1]), pa.array(texts[1:] + texts[:2])])
    rows = _RowSets(MinhashSignature(config)(pa.table({"text": column})), config)
    assert len(rows.sets.offsets) - 1 == 4  # four distinct values, null included
    plain = verification_sets(column.combine_chunks(), config)
    assert rows.sets.values.dtype == np.uint32
    for row in range(len(column)):
        assert np.array_equal(rows.doc(row), plain.doc(row))


@pytest.mark.parametrize("verify", [True, False])
def test_keep_on_its_projection_marks_as_keep_on_the_documents(verify: bool) -> None:
    """The shuffle moves shingle sets made on the map side, not texts: same marks, same
    checks; rows outside a component carry no set; the text does not travel."""
    from operators.dedup.near_keep import SETS

    config = MinhashDedupConfig(verify=verify)
    rows = drifting_chain(120) + [("e1", doc(90, 7), "e"), ("e2", doc(90, 7), "e"), ("s", doc(60, 8), None)]
    table = keep_input(rows, config)
    op = VerifyKeep(config)
    # two map-side batches (as two files would be), then one group holding them
    projected = pa.concat_tables([op.project(table.slice(0, 70)), op.project(table.slice(70))])
    assert "text" not in projected.column_names
    if verify:
        assert projected[SETS].null_count == 1  # "s": in no component
        assert projected[SETS][len(rows) - 1].as_py() is None
    grouped = VerifyKeep(config)
    assert grouped(projected).equals(op(table))
    assert grouped.metrics()["verified_pairs"] == op.metrics()["verified_pairs"]


def test_keep_checks_only_linked_keepers_and_prefilters_by_sketch() -> None:
    from operators.dedup.near_keep import prefilter_margin

    base = doc(80, 1)
    near = base.split()
    near[40] = "zebra"
    table = keep_input([("a", base, "x"), ("b", " ".join(near), "x"), ("c", doc(80, 2), "x")])
    bands = table[BANDS].to_pylist()
    # c unlike a but made to share all of a's buckets: linked, estimated far below, skipped
    # b like a but made to share none: never compared, so kept (LSH's miss, as for any pair)
    bands[2] = bands[0]
    bands[1] = [h ^ 1 for h in bands[0]]
    table = table.set_column(table.column_names.index(BANDS), BANDS, pa.array(bands, table.schema.field(BANDS).type))
    op = VerifyKeep(MinhashDedupConfig())
    out = op(table)
    assert out[KEEP].to_pylist() == [True, True, True]
    assert op.metrics()["prefiltered_pairs"] == 1 and op.metrics()["verified_pairs"] == 0
    assert round(prefilter_margin(112), 3) == 0.249 and round(prefilter_margin(64), 3) == 0.330


def drifting_chain(n: int) -> list[tuple[str, str, str]]:
    """``n`` copies of a page in one component, each the one before with 3 words replaced."""
    rng = np.random.default_rng(3)
    words = doc(300, 9).split()
    rows = []
    for i in range(n):
        rows.append((f"d{i:04d}", " ".join(words), "x"))
        for j in rng.integers(len(words), size=3):
            words[j] = f"w{rng.integers(10**6)}"
    return rows


def test_keep_checks_grow_with_links_not_with_the_component() -> None:
    """A chain of small edits: each copy is linked to its neighbours only; checks stay
    below the pairs that share a bucket, far below members x keepers."""
    rows = drifting_chain(400)
    op = VerifyKeep(MinhashDedupConfig())
    out = op(keep_input(rows))
    kept = sum(out[KEEP].to_pylist())
    assert 10 < kept < 390  # the chain drifts: several keepers, most copies removed
    assert op.metrics()["verified_pairs"] + op.metrics()["prefiltered_pairs"] < 6 * len(rows)
    assert op.metrics()["verified_pairs"] < len(rows) * kept / 10


def jaccards(rows: list[tuple[str, str, str]]) -> tuple[dict[str, set], Any]:
    """Word 5-gram sets of the rows and their exact Jaccard."""
    sets = {r[0]: set(zip(*[r[1].split()[k:] for k in range(5)])) for r in rows}
    return sets, lambda a, b: len(sets[a] & sets[b]) / len(sets[a] | sets[b])


@pytest.mark.parametrize("max_hops", [2, 3, None])
def test_chains_lead_from_each_removed_document_to_its_keeper_in_at_most_max_hops(max_hops: int | None) -> None:
    """A chain of small edits: with max_hops > 1 copies are also removed as copies of removed
    documents, each within max_hops verified links of its keeper (so at least 1 - max_hops x
    (1 - threshold) like it); with chains of any length fewer keepers remain still."""
    rows = drifting_chain(200)
    plain = VerifyKeep(MinhashDedupConfig(max_hops=1))(keep_input(rows))
    config = MinhashDedupConfig(max_hops=max_hops)
    op = VerifyKeep(config)
    chained = op(keep_input(rows, config))
    plain_kept = sum(plain[KEEP].to_pylist())
    assert plain_kept > 2
    kept = [i for i, k in zip(chained["id"].to_pylist(), chained[KEEP].to_pylist()) if k]
    assert len(kept) < plain_kept
    assert op.metrics()["chain_matches"] > 0
    sets, jaccard = jaccards(rows)
    order = sorted(sets)
    # each removed document: a verified link to an earlier document of its cluster, and a
    # path of at most max_hops such links to the keeper
    cluster = dict(zip(chained["id"].to_pylist(), chained[CLUSTER_ID].to_pylist()))
    hops = {i: 0 for i in kept}
    for i in order:
        if i in hops:
            continue
        assert cluster[i] in kept
        links = [hops[e] + 1 for e in order[:order.index(i)] if e in hops and cluster[e] == cluster[i]
                 and jaccard(i, e) >= 0.8]
        assert links, i
        hops[i] = min(links)
        if max_hops:
            assert hops[i] <= max_hops, (i, hops[i])
            assert jaccard(i, cluster[i]) >= 1 - max_hops * 0.2 - 1e-9
    if max_hops == 2:  # a bound: fewer removed than with any chain
        unbounded = VerifyKeep(MinhashDedupConfig(max_hops=None))(keep_input(rows, config))
        assert len(kept) > sum(unbounded[KEEP].to_pylist())


def test_match_removed_is_max_hops_null() -> None:
    assert MinhashDedupConfig(match_removed=True).max_hops is None
    assert MinhashDedupConfig(match_removed=False).max_hops == 1
    with pytest.raises(ValueError, match="give max_hops"):
        MinhashDedupConfig(match_removed=True, max_hops=2)