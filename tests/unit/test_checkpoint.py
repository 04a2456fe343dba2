"""Unit tests of fingerprints, wave planning and commits (jobs/checkpoint.py)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs import checkpoint as cp
from jobs.checkpoint import FileRef, WaveResult
from jobs.store import InputFile, Store

# --- fingerprints -----------------------------------------------------------------------------


def test_fingerprint_is_16_hex_and_ignores_key_order() -> None:
    a = cp.fingerprint({"op": "x", "config": {"b": 1, "a": [1, {"d": 2, "c": 3}]}})
    b = cp.fingerprint({"config": {"a": [1, {"c": 3, "d": 2}], "b": 1}, "op": "x"})
    assert a == b
    assert len(a) == 16 and int(a, 16) >= 0


def test_fingerprint_keeps_list_order() -> None:
    assert cp.fingerprint([1, 2]) != cp.fingerprint([2, 1])


def test_operator_fingerprint_changes_with_each_part() -> None:
    base = cp.operator_fingerprint("exact_dedup.hash", 1, {"scope": "source"}, "up")
    assert base == cp.operator_fingerprint("exact_dedup.hash", 1, {"scope": "source"}, "up")
    variants = {
        cp.operator_fingerprint("exact_dedup.keep", 1, {"scope": "source"}, "up"),
        cp.operator_fingerprint("exact_dedup.hash", 2, {"scope": "source"}, "up"),
        cp.operator_fingerprint("exact_dedup.hash", 1, {"scope": "global"}, "up"),
        cp.operator_fingerprint("exact_dedup.hash", 1, {}, "up"),
        cp.operator_fingerprint("exact_dedup.hash", 1, {"scope": "source"}, "other-up"),
    }
    assert base not in variants
    assert len(variants) == 5


def test_read_fingerprint_follows_files_and_input_config() -> None:
    files = [InputFile("/in/a.jsonl", 10, "111"), InputFile("/in/b.jsonl", 20, "222")]
    config = {"paths": ["/in/*.jsonl"], "format": "jsonl", "max_text_bytes": 100}
    base = cp.read_fingerprint(files, config)
    assert base == cp.read_fingerprint(list(files), dict(reversed(list(config.items()))))
    rewritten = [files[0], InputFile("/in/b.jsonl", 20, "333")]
    grown = [files[0], InputFile("/in/b.jsonl", 21, "222")]
    fewer = files[:1]
    assert len({base, cp.read_fingerprint(rewritten, config), cp.read_fingerprint(grown, config),
                cp.read_fingerprint(fewer, config),
                cp.read_fingerprint(files, {**config, "max_text_bytes": 99})}) == 5


def test_prefixes() -> None:
    assert cp.stage_prefix("filter", "abc") == "stages/filter-abc"
    prefix = cp.wave_prefix("filter", "abc", 17, ["a", "b"])
    assert prefix.startswith("stages/filter-abc/wave-00017-")
    assert prefix == cp.wave_prefix("filter", "abc", 17, ["a", "b"])
    assert prefix != cp.wave_prefix("filter", "abc", 17, ["a"])  # re-planned waves never share


# --- wave planning ----------------------------------------------------------------------------


def test_plan_waves_respects_the_budget_and_order() -> None:
    sizes = [("a", 40), ("b", 40), ("c", 20), ("d", 50), ("e", 60), ("f", 1)]
    assert cp.plan_waves(sizes, 100) == [["a", "b", "c"], ["d"], ["e", "f"]]


def test_plan_waves_large_file_gets_its_own_wave() -> None:
    sizes = [("a", 10), ("huge", 1000), ("b", 10), ("c", 10)]
    assert cp.plan_waves(sizes, 100) == [["a"], ["huge"], ["b", "c"]]
    assert cp.plan_waves([("huge", 1000)], 100) == [["huge"]]


def test_plan_waves_edge_cases() -> None:
    assert cp.plan_waves([], 100) == []
    assert cp.plan_waves([("a", 0), ("b", 0)], 1) == [["a", "b"]]
    assert cp.plan_waves([("a", 5), ("b", 5)], 10) == [["a", "b"]]  # the budget is inclusive
    assert cp.plan_waves([("a", 5), ("b", 6)], 10) == [["a"], ["b"]]


@given(st.lists(st.integers(0, 300), max_size=30), st.integers(1, 200))
def test_plan_waves_properties(sizes: list[int], budget: int) -> None:
    items = [(f"k{n}", size) for n, size in enumerate(sizes)]
    waves = cp.plan_waves(items, budget)
    by_key = dict(items)
    assert [k for wave in waves for k in wave] == [k for k, _ in items]  # order, none lost
    for wave in waves:
        assert wave  # never empty
        total = sum(by_key[k] for k in wave)
        assert total <= budget or len(wave) == 1
    for left, right in zip(waves, waves[1:]):
        # a wave closes only when the next input would not fit
        assert sum(by_key[k] for k in left) + by_key[right[0]] > budget


# --- wave results -----------------------------------------------------------------------------

STATS = [
    {"key": "w/part-1.parquet", "kind": "kept", "rows": 5, "bytes": 500, "reasons": "{}"},
    {"key": "w/rejected/part-0.parquet", "kind": "rejected", "rows": 3, "bytes": 90,
     "reasons": json.dumps({"read:empty_text": 2, "dedup:exact": 1})},
    {"key": "w/part-0.parquet", "kind": "kept", "rows": 7, "bytes": 700, "reasons": "{}"},
    {"key": "w/rejected/part-1.parquet", "kind": "rejected", "rows": 1, "bytes": 30,
     "reasons": json.dumps({"dedup:exact": 1})},
]


def test_from_stats_sorts_files_and_counts_reasons() -> None:
    result = WaveResult.from_stats(["in/a"], STATS, rows_in=None, seconds=1.5)
    assert [f.key for f in result.files] == ["w/part-0.parquet", "w/part-1.parquet"]
    assert result.files[0] == FileRef("w/part-0.parquet", 7, 700)
    assert [f.key for f in result.rejected] == ["w/rejected/part-0.parquet", "w/rejected/part-1.parquet"]
    assert result.dropped == Counter({"read:empty_text": 2, "dedup:exact": 2})
    assert result.rows_out == 12
    assert result.rows_in == 16  # kept plus dropped when not given
    assert WaveResult.from_stats(["in/a"], STATS, rows_in=20, seconds=0).rows_in == 20


def test_from_stats_empty() -> None:
    result = WaveResult.from_stats([], [], rows_in=None, seconds=0.0)
    assert (result.files, result.rejected, result.rows_in, result.rows_out) == ([], [], 0, 0)


def test_json_roundtrip() -> None:
    result = WaveResult.from_stats(["in/a", "in/b"], STATS, rows_in=17, seconds=2.25)
    result.artifact = [FileRef("stages/fit-1/artifact/a.parquet", 3, 100)]
    result.artifact_by_file = True
    obj = json.loads(json.dumps(result.to_json()))
    assert obj["rows_out"] == 12
    back = WaveResult.from_json(obj)
    assert back == result
    assert back.to_json() == result.to_json()


def test_artifact_stats_rows_become_the_artifact() -> None:
    stats = STATS + [{"kind": "artifact_by_file", "key": "s/artifact/part-1.parquet", "rows": 4, "bytes": 9,
                      "reasons": "{}"}]
    result = WaveResult.from_stats(["in/a"], stats, rows_in=None, seconds=0)
    assert result.artifact == [FileRef("s/artifact/part-1.parquet", 4, 9)] and result.artifact_by_file
    assert result.rows_out == WaveResult.from_stats(["in/a"], STATS, rows_in=None, seconds=0).rows_out


def test_to_json_rounds_seconds() -> None:
    result = WaveResult(inputs=[], seconds=1.23456)
    assert result.to_json()["seconds"] == 1.235


def test_merge_sums_waves() -> None:
    one = WaveResult.from_stats(["a"], STATS[:2], rows_in=9, seconds=1.0)
    two = WaveResult.from_stats(["b"], STATS[2:], rows_in=8, seconds=2.5)
    total = cp.merge([one, two])
    assert total.inputs == ["a", "b"]
    assert [f.key for f in total.files] == ["w/part-1.parquet", "w/part-0.parquet"]
    assert len(total.rejected) == 2
    assert total.dropped == Counter({"read:empty_text": 2, "dedup:exact": 2})
    assert total.rows_in == 17
    assert total.rows_out == 12
    assert total.seconds == pytest.approx(3.5)
    assert cp.merge([]) == WaveResult(inputs=[])
    assert one.inputs == ["a"]  # inputs are not mutated


# --- commits ----------------------------------------------------------------------------------


def test_commit_creates_then_adopts_the_first(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    key = f"{cp.stage_prefix('s', 'f')}/{cp.COMMIT}"
    first = {"writer": 1, "rows_out": 10}
    assert cp.commit(store, key, first) == first
    second = cp.commit(store, key, {"writer": 2, "rows_out": 10})
    assert second == first
    assert store.read_json(key) == first


def test_concurrent_commits_agree(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    key = f"{cp.wave_prefix('s', 'f', 0, ['in'])}/{cp.COMMIT}"
    results: list[dict] = []
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        results.append(cp.commit(Store(str(tmp_path)), key, {"writer": n}))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert all(r == results[0] for r in results)
    assert store.read_json(key) == results[0]


def test_commit_refused_but_unreadable_fails_loudly(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(str(tmp_path))
    monkeypatch.setattr(store, "create_json", lambda key, body: False)
    with pytest.raises(RuntimeError, match="refused but cannot be read"):
        cp.commit(store, "x/_COMMIT.json", {})


def test_plan_even_balances_output_shards() -> None:
    # 8 files of a 100k-document run against a 256 MB shard: greedy packing gives 7 + 1 files
    sizes = [(f"f{n}", 30) for n in range(8)]
    assert [len(s) for s in cp.plan_waves(sizes, 210)] == [7, 1]
    assert cp.plan_even(sizes, 210) == [[f"f{n}" for n in range(4)], [f"f{n}" for n in range(4, 8)]]
    assert cp.plan_even([], 100) == []
    assert cp.plan_even([("huge", 1000)], 100) == [["huge"]]


@given(st.lists(st.integers(0, 300), max_size=30), st.integers(1, 200))
def test_plan_even_properties(sizes: list[int], budget: int) -> None:
    items = [(f"k{n}", size) for n, size in enumerate(sizes)]
    groups, greedy = cp.plan_even(items, budget), cp.plan_waves(items, budget)
    assert [k for g in groups for k in g] == [k for k, _ in items]  # order, none lost
    assert all(groups) and len(groups) <= len(greedy)
    by_key, total = dict(items), sum(sizes)
    if len(groups) > 1:  # no run is further from an even share than one input takes it
        share = total / len(greedy)
        assert max(sum(by_key[k] for k in g) for g in groups) <= share + max(sizes)
