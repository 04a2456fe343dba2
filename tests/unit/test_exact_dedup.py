"""Unit tests of exact deduplication (operators/dedup/exact.py)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.base import Composite
from operators.dedup.exact import (
    COUNT,
    HASH,
    KEEP,
    ExactDedup,
    ExactDedupConfig,
    ExactHash,
    ExactKeep,
    normalize_text,
)

SOURCE = ExactDedupConfig(scope="source")
GLOBAL = ExactDedupConfig(scope="global")


def normalized(*texts: str) -> list[str]:
    return normalize_text(pa.array(texts, pa.string())).to_pylist()


def hashes(table: pa.Table, config: ExactDedupConfig = SOURCE) -> list[str]:
    return ExactHash(config)(table)[HASH].to_pylist()


def dedup(ids: list[str], texts: list[str], sources: list[str] | None = None,
          config: ExactDedupConfig = SOURCE) -> pa.Table:
    """Hash then keep over one table (the whole table is one call, so groups are complete)."""
    table = pa.table({
        "id": pa.array(ids, pa.string()),
        "text": pa.array(texts, pa.string()),
        "source": pa.array(sources if sources is not None else ["s"] * len(ids), pa.string()),
    })
    return ExactKeep(config)(ExactHash(config)(table))


# --- normalization --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello World", "hello world"),
        ("HELLO   world", "hello world"),
        ("  hello\tworld\n", "hello world"),
        ("a\r\n\r\nb", "a b"),
        ("\ufb01ne print", "fine print"),  # NFKC: the "fi" ligature becomes two letters
        ("\uff21\uff22\uff23", "abc"),  # NFKC: full-width letters
        ("caf\u0065\u0301", "caf\u00e9"),  # NFKC composes e + combining acute
        ("a\u00a0b\u3000c", "a b c"),  # NFKC maps no-break and ideographic spaces to " "
        ("Hello, world!", "hello, world!"),  # punctuation is kept
        ("hello world", "hello world"),
        ("", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalized(text) == [expected]


def test_normalize_keeps_punctuation_distinct() -> None:
    a, b, c = normalized("Hello, world!", "Hello world", "hello world.")
    assert len({a, b, c}) == 3


def test_normalize_keeps_nulls() -> None:
    assert normalize_text(pa.array([None, "A"], pa.string())).to_pylist() == [None, "a"]


@pytest.mark.parametrize("space", ["\x0b", "\x85", "\u1680", "\u2028", "\u2029"])
def test_normalize_collapses_unicode_whitespace(space: str) -> None:
    assert normalized(f"a{space}b") == ["a b"]


# --- hashing --------------------------------------------------------------------------------


def test_hash_declares_its_columns() -> None:
    assert ExactHash.version >= 1
    assert ExactHash.columns_read(SOURCE) == ("text", "source")
    assert ExactHash.columns_written(SOURCE) == (HASH,)
    assert ExactKeep.columns_read(SOURCE) == ("id", HASH)
    assert set(ExactKeep.columns_written(SOURCE)) == {KEEP, COUNT}
    assert ExactKeep(SOURCE).group_key() == (HASH,)


def test_hash_is_128_bit_hex_and_equal_for_normalized_copies() -> None:
    table = pa.table({"text": ["Hello  World", "hello world", "hello, world"], "source": ["s"] * 3})
    h = hashes(table)
    assert all(len(x) == 32 and int(x, 16) >= 0 for x in h)
    assert h[0] == h[1] != h[2]


def test_scope_source_separates_sources_global_does_not() -> None:
    table = pa.table({"text": ["same text", "Same  text", "same text"],
                      "source": ["web", "books", "web"]})
    by_source = hashes(table, SOURCE)
    assert by_source[0] == by_source[2]
    assert by_source[0] != by_source[1]
    by_all = hashes(table, GLOBAL)
    assert len(set(by_all)) == 1


def test_hash_is_deterministic_across_batches() -> None:
    one = pa.table({"text": ["x", "y"], "source": ["a", "b"]})
    two = pa.table({"text": ["y"], "source": ["b"]})
    assert hashes(one)[1] == hashes(two)[0]


def test_hash_does_not_alter_other_columns() -> None:
    table = pa.table({"id": ["1"], "text": ["Text"], "source": ["s"], "extra": [3]})
    out = ExactHash(SOURCE)(table)
    assert out.column_names == ["id", "text", "source", "extra", HASH]
    assert out.drop_columns([HASH]).equals(table)


# --- keeping --------------------------------------------------------------------------------


def test_keep_marks_min_id_and_counts_groups() -> None:
    out = dedup(ids=["b", "a", "c", "d", "e"],
                texts=["dup", "DUP", "solo", "pair", "pair "]).to_pydict()
    assert dict(zip(out["id"], out[KEEP])) == {"a": True, "b": False, "c": True, "d": True, "e": False}
    assert dict(zip(out["id"], out[COUNT])) == {"a": 2, "b": 2, "c": 1, "d": 2, "e": 2}


def test_keep_compares_ids_as_strings() -> None:
    out = dedup(ids=["9", "10", "100"], texts=["t"] * 3).to_pydict()
    assert dict(zip(out["id"], out[KEEP])) == {"10": True, "100": False, "9": False}


def test_keep_is_independent_of_row_order() -> None:
    rng = random.Random(7)
    ids = [f"id{n:03d}" for n in range(60)]
    texts = [f"text {n % 13}" for n in range(60)]
    expected = None
    for _ in range(5):
        order = list(range(60))
        rng.shuffle(order)
        out = dedup([ids[i] for i in order], [texts[i] for i in order]).to_pydict()
        kept = {i for i, k in zip(out["id"], out[KEEP]) if k}
        counts = dict(zip(out["id"], out[COUNT]))
        if expected is None:
            expected = (kept, counts)
        assert (kept, counts) == expected
    assert len(expected[0]) == 13


def test_keep_keeps_row_order_and_columns() -> None:
    table = ExactHash(SOURCE)(pa.table({"id": ["z", "y"], "text": ["a", "a"], "source": ["s", "s"]}))
    out = ExactKeep(SOURCE)(table)
    assert out["id"].to_pylist() == ["z", "y"]
    assert out.column_names == table.column_names + [KEEP, COUNT]
    assert out[KEEP].to_pylist() == [False, True]


def test_keep_with_scope_source_keeps_one_per_source() -> None:
    out = dedup(["1", "2", "3", "4"], ["t", "t", "t", "t"], ["web", "web", "books", "books"]).to_pydict()
    assert out[KEEP] == [True, False, True, False]
    out = dedup(["1", "2", "3", "4"], ["t", "t", "t", "t"], ["web", "web", "books", "books"],
                config=GLOBAL).to_pydict()
    assert out[KEEP] == [True, False, False, False]
    assert out[COUNT] == [4, 4, 4, 4]


def test_keep_on_empty_table() -> None:
    empty = pa.table({"id": pa.array([], pa.string()), HASH: pa.array([], pa.string())})
    out = ExactKeep(SOURCE)(empty)
    assert out.num_rows == 0
    assert out.schema.field(KEEP).type == pa.bool_()
    assert out.schema.field(COUNT).type == pa.int64()
    # and the whole chain on an empty batch
    chain = dedup([], [])
    assert chain.num_rows == 0 and {HASH, KEEP, COUNT} <= set(chain.column_names)


def test_operators_are_idempotent() -> None:
    once = dedup(["b", "a", "c"], ["x", "x", "y"])
    twice = ExactKeep(SOURCE)(ExactHash(SOURCE)(once))
    assert twice.column_names == once.column_names
    assert twice.equals(once)


def test_composite_parts() -> None:
    assert issubclass(ExactDedup, Composite)
    parts = ExactDedup.parts(GLOBAL)
    assert [(p.suffix, p.operator) for p in parts] == [("hash", ExactHash), ("keep", ExactKeep)]
    assert all(p.config == GLOBAL for p in parts)


def test_config_rejects_unknown_scope() -> None:
    with pytest.raises(ValueError, match="scope"):
        ExactDedupConfig(scope="everything")


# --- property ---------------------------------------------------------------------------------

TEXTS = st.sampled_from(["alpha", "Alpha", "alpha ", " ALPHA\t", "beta", "beta.", "\ufb01sh", "fish",
                         "gamma  ray", "gamma ray", "Gamma\nRay", "delta"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), TEXTS), max_size=40,
                unique_by=lambda pair: pair[0]),
       st.sampled_from(["source", "global"]))
def test_one_keeper_per_normalized_text_and_it_is_the_min_id(
        rows: list[tuple[int, str]], scope: str) -> None:
    ids = [f"{n:05d}" for n, _ in rows]
    texts = [t for _, t in rows]
    out = dedup(ids, texts, config=ExactDedupConfig(scope=scope)).to_pydict()
    groups: dict[str, list[str]] = {}
    for id_, norm in zip(ids, normalized(*texts) if texts else []):
        groups.setdefault(norm, []).append(id_)
    keepers = {i for i, k in zip(out["id"], out[KEEP]) if k}
    assert keepers == {min(members) for members in groups.values()}
    assert len(keepers) == len(groups)
    sizes = {id_: len(members) for members in groups.values() for id_ in members}
    assert dict(zip(out["id"], out[COUNT])) == sizes
    # dedup is idempotent: once the copies are removed, a second pass keeps everything
    kept = [(i, t) for i, t, k in zip(ids, texts, out[KEEP]) if k]
    again = dedup([i for i, _ in kept], [t for _, t in kept], config=ExactDedupConfig(scope=scope))
    assert all(again[KEEP].to_pylist())
