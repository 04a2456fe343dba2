"""Large-star/small-star rounds give exactly the single-worker components on the same edges."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.base import FILE_COLUMN, GroupOperator
from operators.dedup.lsh import LshComponents
from operators.dedup.minhash_config import EDGE_SCHEMA, MinhashDedupConfig
from operators.dedup.star_components import COMPONENT_SCHEMA, LargeStar, SmallStar

CONFIG = MinhashDedupConfig()


def run_step(step: type[GroupOperator], table: pa.Table, partitions: int) -> tuple[pa.Table, Counter]:
    """What jobs/ does for one round: project, hash-partition on the key, one call per partition."""
    if table.num_rows == 0:  # jobs/ runs no tasks for a round without input files
        return table, Counter()
    op = step(CONFIG)
    rows = op.project(table)
    key = op.group_key()
    buckets: dict[int, list[int]] = {}
    for i, value in enumerate(rows[key[0]].to_pylist()):
        p = int.from_bytes(hashlib.blake2b(str(value).encode(), digest_size=4).digest(), "little") % partitions
        buckets.setdefault(p, []).append(i)
    outputs, metrics = [], Counter()
    for p in sorted(buckets):
        part = rows.take(pa.array(buckets[p])).sort_by([(key[0], "ascending")])
        call = step(CONFIG)
        outputs.append(call(part))
        metrics.update(call.metrics())
    return (pa.concat_tables(outputs) if outputs else EDGE_SCHEMA.empty_table()), metrics


def local_rounds(edges: pa.Table, partitions: int = 3) -> tuple[pa.Table, int]:
    """The distributed path in-process: rounds to the fixed point, then the finish steps."""
    rounds = LshComponents.rounds
    assert rounds is not None
    table, count = edges, 0
    while True:
        table, metrics = run_step(rounds.steps[0], table, partitions)
        count += 1
        if metrics.get(rounds.converged_metric, 0) == 0:
            break
        for step in rounds.steps[1:]:
            table, _ = run_step(step, table, partitions)
            count += 1
        assert count < 200
    for step in rounds.finish:
        table, _ = run_step(step, table, partitions)
    return table, count


def single(edges: pa.Table) -> pa.Table:
    return LshComponents(CONFIG).fit(iter([edges]))


def canonical(table: pa.Table) -> list[dict]:
    if table.num_rows == 0:
        return []
    return table.select(COMPONENT_SCHEMA.names).sort_by([("id", "ascending")]).to_pylist()


def edge_table(pairs: list[tuple[str, str]], file_of: dict[str, str]) -> pa.Table:
    """Edges oriented larger -> smaller, as the bucket stage writes them."""
    oriented = [(max(a, b), min(a, b)) for a, b in pairs if a != b]
    return pa.table({"src": [a for a, _ in oriented], "dst": [b for _, b in oriented],
                     "src_file": [file_of[a] for a, _ in oriented],
                     "dst_file": [file_of[b] for _, b in oriented]}, schema=EDGE_SCHEMA)


def test_path_graph_converges_to_one_star_centered_on_the_smallest_id() -> None:
    ids = [f"doc-{i}" for i in range(60)]
    random.Random(3).shuffle(ids)
    files = {d: f"part-{hash(d) % 4}" for d in ids}
    edges = edge_table(list(zip(ids, ids[1:])), files)
    table, count = local_rounds(edges)
    assert canonical(table) == canonical(single(edges))
    rows = table.to_pylist()
    assert {r["dedup_minhash_component"] for r in rows} == {min(ids)}
    assert {r["dedup_minhash_candidates"] for r in rows} == {60}
    assert all(r[FILE_COLUMN] == files[r["id"]] for r in rows)
    assert count > 2  # a path needs several rounds: the loop really iterated


def test_string_order_not_numeric_order_labels_components() -> None:
    files = {d: "f" for d in ("9", "10", "100", "2")}
    edges = edge_table([("9", "10"), ("10", "100"), ("100", "2")], files)
    table, _ = local_rounds(edges)
    assert {r["dedup_minhash_component"] for r in table.to_pylist()} == {"10"}
    assert canonical(table) == canonical(single(edges))


def test_no_edges_give_an_empty_table() -> None:
    table, count = local_rounds(EDGE_SCHEMA.empty_table())
    assert table.num_rows == 0 and count == 1


def test_large_star_counts_non_star_nodes() -> None:
    files = {d: "f" for d in "abcd"}
    star = edge_table([("b", "a"), ("c", "a"), ("d", "a")], files)
    _, metrics = run_step(LargeStar, star, 1)
    assert metrics["non_star_nodes"] == 0
    chain = edge_table([("b", "a"), ("c", "b")], files)
    _, metrics = run_step(LargeStar, chain, 2)
    assert metrics["non_star_nodes"] == 1  # b has a smaller and a larger neighbour


def test_small_star_links_smaller_neighbours_to_their_minimum() -> None:
    files = {d: "f" for d in "abcd"}
    table, _ = run_step(SmallStar, edge_table([("d", "b"), ("d", "c"), ("d", "a")], files), 1)
    assert sorted(zip(table["src"].to_pylist(), table["dst"].to_pylist())) == [("b", "a"), ("c", "a"), ("d", "a")]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=80),
       st.integers(1, 4))
def test_rounds_equal_single_worker_components(n: int, raw: list[tuple[int, int]], partitions: int) -> None:
    ids = [f"{i * 7919 % 1000}" for i in range(n)]  # varied lengths: string order differs from numeric
    files = {d: f"part-{i % 3}" for i, d in enumerate(ids)}
    pairs = [(ids[a % n], ids[b % n]) for a, b in raw]
    edges = edge_table(pairs, files)
    # the bucket stage writes the same edge at most once per partition: repeats must be harmless
    edges = pa.concat_tables([edges, edges.slice(0, len(edges) // 2)])
    table, _ = local_rounds(edges, partitions)
    assert canonical(table) == canonical(single(edges))


@pytest.mark.parametrize("partitions", [1, 5])
def test_random_graph_with_many_components(partitions: int) -> None:
    rng = random.Random(11)
    ids = [f"id-{rng.randrange(10**6):06d}-{i}" for i in range(500)]
    files = {d: f"part-{i % 7}" for i, d in enumerate(ids)}
    pairs = [(rng.choice(ids), rng.choice(ids)) for _ in range(350)]
    edges = edge_table(pairs, files)
    table, _ = local_rounds(edges, partitions)
    assert canonical(table) == canonical(single(edges))
