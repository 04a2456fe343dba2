"""Stats rows of a multi-wave job handed on wave by wave (jobs/wave_stream.py)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.wave_stream import ITEM_DONE, WaveOrderError, done_row, split_by_wave

PREFIXES = [[f"stages/read-1/wave-0000{w}-a", f"stages/map-2/wave-0000{w}-b"] for w in range(4)]


def rows(*keys: str) -> pa.Table:
    return pa.table({"key": list(keys), "kind": ["kept"] * len(keys)})


def done(wave: int) -> pa.Table:
    return pa.Table.from_pylist([done_row(PREFIXES[wave][0])])


def test_a_wave_is_handed_on_when_all_its_items_are_done_and_empty_waves_at_once() -> None:
    handed: list[int] = []

    def batches():
        yield rows("stages/read-1/wave-00000-a/part-0.parquet", "stages/map-2/wave-00000-b/part-0.parquet")
        yield done(0)
        assert handed == []  # wave 0 has two items
        yield rows("stages/map-2/wave-00000-b")  # a metrics row: the prefix itself
        yield done(0)
        assert handed == [0, 1]  # wave 1 has no items: handed on right after wave 0
        yield rows("stages/read-1/wave-00002-a/part-5.parquet")
        yield done(2)

    out = []
    for wave, got in split_by_wave(batches(), PREFIXES, [2, 0, 1, 0]):
        handed.append(wave)
        assert all(r["kind"] != ITEM_DONE for r in got)  # markers are not stats
        out.append((wave, [r["key"] for r in got]))
    assert out == [(0, ["stages/read-1/wave-00000-a/part-0.parquet", "stages/map-2/wave-00000-b/part-0.parquet",
                        "stages/map-2/wave-00000-b"]), (1, []), (2, ["stages/read-1/wave-00002-a/part-5.parquet"]),
                   (3, [])]


def test_rows_of_a_committed_wave_are_an_error_not_a_commit() -> None:
    stream = split_by_wave(iter([done(0), rows("stages/read-1/wave-00000-a/late")]), PREFIXES[:2], [1, 1])
    assert next(stream)[0] == 0
    with pytest.raises(WaveOrderError, match="wave 0"):
        list(stream)


def test_a_job_that_ends_before_every_item_is_done_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="unaccounted for"):
        list(split_by_wave(iter([done(0)]), PREFIXES[:2], [1, 2]))


def test_a_key_under_no_prefix_is_an_error() -> None:
    with pytest.raises(KeyError, match="none of the job's output prefixes"):
        list(split_by_wave(iter([rows("stages/other/wave-00000-z/p")]), PREFIXES, [1, 0, 0, 0]))


def test_items_finishing_out_of_order_still_hand_waves_on_in_order() -> None:
    from jobs.wave_stream import item_stats, item_table

    def item(wave: int, name: str) -> list[dict]:
        data = {"kind": "kept", "key": f"{PREFIXES[wave][0]}/{name}", "rows": 1, "bytes": 1, "reasons": ""}
        return [data, done_row(PREFIXES[wave][0])]

    # wave 2's item and the second item of wave 0 finish before wave 0's first
    batches = [item_table([item(2, "c")]), item_table([item(0, "b"), item(1, "x")]), item_table([item(0, "a")])]
    got = list(split_by_wave((item_stats(b) for b in batches), PREFIXES[:3], [2, 1, 1]))
    assert [(w, sorted(r["key"].rsplit("/", 1)[1] for r in rows)) for w, rows in got] == \
        [(0, ["a", "b"]), (1, ["x"]), (2, ["c"])]
    assert item_stats(item_table([])).num_rows == 0
