"""Stats rows of a job that runs several waves, handed on wave by wave as each finishes.

One Ray Data job runs every pending wave of a chain (jobs/execute.py), so the model actors
of a GPU stage start once rather than once per wave; each wave must still be committed on
its own as soon as it is done (a crash costs one wave). Every call of the job handles one
*item* (an input file) whole and returns it as one row (:func:`item_table`): the list of
stats rows of everything written for it so far, closed by the first stage's ``item_done``
marker (:func:`done_row`); a later stage maps the item's kept files and returns the same row
with its own stats rows added. An item's rows and its marker are thus never apart, so the
job needs no order: Ray Data runs it with ``preserve_order`` off (with it on, a GPU run's
actors sat idle about a second in every seven: docs/benchmarks.md). A wave is done when the markers of all its
items are in, whatever order the items finish in; waves are still handed on in wave order.
Rows are told apart by their key, which lies under one of the wave's output prefixes (a
stage's ``wave-<n>-<digest>`` directory).

A row of a wave already handed on would mean an item was split; that is an error rather
than a commit of an incomplete wave.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from jobs.parts import STATS_SCHEMA

ITEM_DONE = "item_done"
"""The ``kind`` of the marker row that closes an item's rows."""


ITEM_TYPE = pa.list_(pa.struct(list(STATS_SCHEMA)))
"""One item's stats rows, as the single value of an item row's ``stats`` column."""


class WaveOrderError(RuntimeError):
    """A stats row arrived for a wave already handed on (an item's rows were split)."""


def item_table(items: list[list[dict[str, Any]]]) -> pa.Table:
    """One row per item, its stats rows (marker included) as one list value."""
    return pa.table({"stats": pa.array(items, type=ITEM_TYPE)})


def item_stats(items: pa.Table) -> pa.Table:
    """The stats rows of every item row of ``items``, as one stats table."""
    return pa.Table.from_struct_array(items["stats"].combine_chunks().flatten())


def done_row(prefix: str) -> dict[str, Any]:
    """The marker row the first stage of a job emits after an item of the wave at ``prefix``."""
    return {"kind": ITEM_DONE, "key": prefix, "rows": 0, "bytes": 0, "reasons": ""}


def split_by_wave(batches: Iterable[pa.Table], prefixes: list[list[str]],
                  items: list[int]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Yield ``(wave, rows)`` for every wave in order, each once all of its items are done
    (markers are not among the rows).

    Args:
        batches: the job's stats rows (:func:`item_stats` of its item rows), each item's
            rows and its marker in one batch.
        prefixes: for each wave, the output prefixes of every stage of the job.
        items: for each wave, how many items (markers) it has.
    """
    wave_of = {p: w for w, wave in enumerate(prefixes) for p in wave}
    rows: list[list[dict[str, Any]]] = [[] for _ in prefixes]
    done = [0] * len(prefixes)
    current = 0  # the first wave not yet handed on

    def finished() -> Iterator[tuple[int, list[dict[str, Any]]]]:
        nonlocal current
        while current < len(prefixes) and done[current] >= items[current]:
            yield current, rows[current]
            rows[current] = []
            current += 1

    yield from finished()  # waves without items
    for batch in batches:
        for row in batch.to_pylist():
            wave = _wave(row["key"], wave_of)
            if wave < current:
                raise WaveOrderError(f"a stats row of wave {wave} ({row['key']}) came after the wave was committed")
            if row["kind"] == ITEM_DONE:
                done[wave] += 1
            else:
                rows[wave].append(row)
        yield from finished()
    if current < len(prefixes):
        missing = {w: items[w] - done[w] for w in range(current, len(prefixes)) if done[w] < items[w]}
        raise RuntimeError(f"the job ended with items of waves {sorted(missing)} unaccounted for: {missing}")


def _wave(key: str, wave_of: dict[str, int]) -> int:
    """The wave of the output prefix ``key`` lies under (or is: a metrics or marker row's key)."""
    parts = key.split("/")
    for end in range(len(parts), 0, -1):
        found = wave_of.get("/".join(parts[:end]))
        if found is not None:
            return found
    raise KeyError(f"{key} is under none of the job's output prefixes")
