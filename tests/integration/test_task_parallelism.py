"""Task stages use every CPU: on 2 CPUs, two file tasks of one stage run at the same time."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from jobs.execute import _collect

BARRIER_SECONDS = 20.0


def _meet(items: pa.Table, *, folder: str, parties: int) -> pa.Table:
    """Each task announces itself, then waits until every task has: only tasks that run at
    once get past (a task run after another finished would wait forever for it)."""
    me = int(items["n"][0].as_py())
    Path(folder, f"arrived-{me}").touch()
    deadline = time.monotonic() + BARRIER_SECONDS
    while len(list(Path(folder).glob("arrived-*"))) < parties:
        if time.monotonic() > deadline:
            return pa.table({"n": [me], "met": [False]})
        time.sleep(0.01)
    return pa.table({"n": [me], "met": [True]})


def test_a_task_stage_runs_as_many_tasks_as_cpus(ray_local: None, tmp_path: Path) -> None:
    import ray

    cpus = int(ray.cluster_resources()["CPU"])
    assert cpus == 2
    ds = ray.data.from_items([{"n": n} for n in range(cpus)], override_num_blocks=cpus).map_batches(
        _meet, batch_size=1, batch_format="pyarrow", fn_kwargs=dict(folder=str(tmp_path), parties=cpus))
    rows = _collect(ds)
    assert sorted(r["n"] for r in rows) == list(range(cpus))
    assert all(r["met"] for r in rows), "the stage's tasks ran one after another"



def test_resource_reservation_is_off_only_for_datasets_without_actors(ray_local: None) -> None:
    # Reserved per operator, half of 2 CPUs held a lone task stage to about one task at a
    # time when tasks are short (8 tasks of 0.15 s: 1.54 s against 0.91 s without).
    import ray

    tasks = ray.data.from_items([{"n": 0}])
    assert _collect(tasks) == [{"n": 0}]
    assert tasks._context.op_resource_reservation_enabled is False
    chain = ray.data.from_items([{"n": 0}])
    _collect(chain, actors=True)
    assert chain._context.op_resource_reservation_enabled is True


def _meet_then_mark(items: pa.Table, *, folder: str) -> pa.Table:
    """The item's row: a data row whose ``reasons`` say whether the two tasks met, then the
    item's done marker (jobs/wave_stream.py)."""
    from jobs.wave_stream import done_row, item_table

    met = _meet(items, folder=folder, parties=2)["met"][0].as_py()
    prefix = items["key"][0].as_py()
    return item_table([[{"kind": "kept", "key": f"{prefix}/part", "rows": 1, "bytes": 0, "reasons": str(met)},
                        done_row(prefix)]])


def test_a_multi_wave_stream_still_runs_tasks_at_once(ray_local: None, tmp_path: Path) -> None:
    # the stream hands waves on in order; the work of both waves runs at once
    import ray

    from jobs.execute import _stream

    ds = ray.data.from_items([{"n": n, "key": f"w/wave-0000{n}-a"} for n in range(2)], override_num_blocks=2)
    ds = ds.map_batches(_meet_then_mark, fn_kwargs=dict(folder=str(tmp_path)), batch_size=1, batch_format="pyarrow")
    waves = list(_stream(ds, [["w/wave-00000-a"], ["w/wave-00001-a"]], [1, 1]))
    assert [(w, [r["key"] for r in rows]) for w, rows in waves] == [(0, ["w/wave-00000-a/part"]),
                                                                   (1, ["w/wave-00001-a/part"])]
    assert all(r["reasons"] == "True" for _, rows in waves for r in rows), "the waves' tasks ran one after another"
