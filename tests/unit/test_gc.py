"""`tamis gc`: deletes the stage directories and waves no run uses, keeps every run
readable, and deletes nothing while a run holds its lock (in-process runs, without Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jobs import cli
from jobs.gc import StoreInUseError, collect
from jobs.lock import RunLock
from jobs.store import Store
from tests.conftest import demo_config, write_config
from tests.integration.test_resume import output_table
from tests.support.serial_ray import run_serially


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_gc_deletes_what_no_run_uses_and_keeps_every_run_readable(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    store = Store(str(root))
    first = demo_config(store=str(root))
    run_serially(write_config(tmp_path / "a.yaml", first), "a")
    second = demo_config(store=str(root))
    second["stages"][2]["config"]["rules"][1]["keep"] = "quality_word_count >= 80"  # another filter
    second_config = write_config(tmp_path / "b.yaml", second)
    run_serially(second_config, "b")
    b_output = output_table(root, "b")
    assert collect(store).dirs == {}  # both runs use all their stages

    # a wave of an old wave plan in a committed stage, and a group stage's shuffle leftovers
    read = next(p for p in (root / "stages").iterdir() if p.name.startswith("read-"))
    wave = next(read.glob("wave-*"))
    shutil.copytree(wave, read / "wave-00009-deadbeef")
    keep = next(p for p in (root / "stages").iterdir() if p.name.startswith("exact_dedup.keep-"))
    leftover = next(keep.glob("wave-*")) / "shuffle" / "p-00000" / "f-00000.arrow"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"x" * 100)
    shutil.rmtree(root / "runs" / "a")  # run a is dropped: its own filter stage is unused now
    a_filter = {p.name for p in (root / "stages").iterdir() if p.name.startswith("filter-")}
    assert len(a_filter) == 2

    before = files_under(root)
    assert cli.main(["gc", "--store", str(root), "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert files_under(root) == before  # a dry run deletes nothing
    assert "read-" in listed and "wave-00009-deadbeef" in listed and "/shuffle" in listed
    assert "filter-" in listed and "would free" in listed

    assert cli.main(["gc", "--store", str(root)]) == 0
    assert "freed" in capsys.readouterr().out
    assert not (read / "wave-00009-deadbeef").exists() and not leftover.exists() and wave.exists()
    assert len([p for p in (root / "stages").iterdir() if p.name.startswith("filter-")]) == 1
    assert collect(store).dirs == {}  # nothing left to find

    # run b stays whole: rerun, every stage is reused, the output is the same
    again = run_serially(second_config, "b")
    assert {s["status"] for s in again["stages"]} == {"cached"}
    assert output_table(root, "b").equals(b_output)


def test_gc_deletes_nothing_while_a_run_holds_its_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    store = Store(str(root))
    store.write_json("runs/live/run.json", {"status": "running", "stages": []})
    store.write_json("stages/read-0123456789abcdef/wave-00000-00000000/part-00000.parquet", {})
    lock = RunLock(store, "live", 120.0)
    lock.acquire()
    try:
        with pytest.raises(StoreInUseError, match="run 'live' is running"):
            collect(store)
        assert cli.main(["gc", "--store", str(root)]) == 3
        assert "gc deletes nothing while a run works" in capsys.readouterr().err
        assert store.exists("stages/read-0123456789abcdef/wave-00000-00000000/part-00000.parquet")
    finally:
        lock.release()
    assert "stages/read-0123456789abcdef" in collect(store).dirs  # released: garbage again
