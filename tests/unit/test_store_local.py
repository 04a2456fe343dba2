"""Unit tests of the store on a local directory and of input resolution (jobs/store.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from jobs.store import JSONL_COMPRESSIONS, InputFile, S3Options, Store, StoreError, is_s3, resolve_inputs, split_s3


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


def touch(path: Path, content: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


# --- addressing -------------------------------------------------------------------------------


def test_uri_is_absolute_and_keys_are_below_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store("rel/store/")
    assert store.uri == str(tmp_path / "rel" / "store")
    assert not store.s3
    assert store.url("a/b.json") == f"{store.uri}/a/b.json"
    assert store.url("") == store.uri
    assert store.fs_path("a/b.json") == os.path.join(store.uri, "a", "b.json")


def test_s3_helpers() -> None:
    assert is_s3("s3://b/k") and not is_s3("/b/k")
    assert split_s3("s3://bucket/a/b/") == ("bucket", "a/b")
    assert split_s3("s3://bucket") == ("bucket", "")
    store = Store("s3://bucket/prefix/")
    assert store.uri == "s3://bucket/prefix"
    assert store.fs_path("k/x.json") == "bucket/prefix/k/x.json"


# --- small JSON objects -------------------------------------------------------------------------


def test_write_read_json_roundtrip(store: Store) -> None:
    obj = {"b": [1, 2.5, None, True], "a": {"nested": "\u00e9t\u00e9"}}
    store.write_json("runs/r1/run.json", obj)
    assert store.read_json("runs/r1/run.json") == obj
    store.write_json("runs/r1/run.json", {"replaced": 1})
    assert store.read_json("runs/r1/run.json") == {"replaced": 1}


def test_write_json_leaves_no_temporary_files(store: Store) -> None:
    store.write_json("a/x.json", {"n": 1})
    store.create_json("a/y.json", {"n": 2})
    store.create_json("a/y.json", {"n": 3})
    assert sorted(os.listdir(os.path.join(store.uri, "a"))) == ["x.json", "y.json"]


def test_read_json_missing_is_none(store: Store) -> None:
    assert store.read_json("nope.json") is None
    assert store.read_json("no/such/dir/x.json") is None


def test_create_json_first_writer_wins(store: Store) -> None:
    assert store.create_json("stages/s/_COMMIT.json", {"writer": 1}) is True
    assert store.create_json("stages/s/_COMMIT.json", {"writer": 2}) is False
    assert store.read_json("stages/s/_COMMIT.json") == {"writer": 1}


def test_create_json_does_not_replace_a_written_object(store: Store) -> None:
    store.write_json("k.json", {"v": "old"})
    assert store.create_json("k.json", {"v": "new"}) is False
    assert store.read_json("k.json") == {"v": "old"}


def test_json_default_str_for_other_types(store: Store) -> None:
    store.write_json("p.json", {"path": Path("/x/y")})
    assert store.read_json("p.json") == {"path": "/x/y"}


# --- listing, existence, deletion -----------------------------------------------------------------


def test_list_is_recursive_sorted_and_relative(store: Store) -> None:
    for key in ("b/2.json", "a/1.json", "b/sub/3.json", "b/1.json", "c.json"):
        store.write_json(key, {})
    assert store.list("b") == ["b/1.json", "b/2.json", "b/sub/3.json"]
    assert store.list("b/sub") == ["b/sub/3.json"]
    assert store.list("") == ["a/1.json", "b/1.json", "b/2.json", "b/sub/3.json", "c.json"]


def test_list_of_missing_prefix_is_empty(store: Store) -> None:
    assert store.list("nothing/here") == []
    assert store.list("") == []  # the store directory itself does not exist yet


def test_exists(store: Store) -> None:
    assert not store.exists("a/x.json")
    store.write_json("a/x.json", {})
    assert store.exists("a/x.json")
    assert store.exists("a")


def test_delete_prefix(store: Store) -> None:
    for key in ("stages/s-1/wave-00000/part-0.json", "stages/s-1/_COMMIT.json", "stages/s-2/x.json",
                "single.json"):
        store.write_json(key, {})
    store.delete_prefix("stages/s-1")
    assert store.list("") == ["single.json", "stages/s-2/x.json"]
    store.delete_prefix("single.json")
    assert not store.exists("single.json")
    store.delete_prefix("never/was")  # nothing to delete is not an error
    assert store.list("") == ["stages/s-2/x.json"]


def test_open_output_makes_parent_directories(store: Store) -> None:
    with store.open_output("stages/s/wave-00001/part-0.bin") as out:
        out.write(b"payload")
    assert store.list("stages") == ["stages/s/wave-00001/part-0.bin"]
    with open(store.fs_path("stages/s/wave-00001/part-0.bin"), "rb") as f:
        assert f.read() == b"payload"


def test_pickled_store_drops_clients_and_still_works(store: Store) -> None:
    store.write_json("a.json", {"n": 1})
    assert store.exists("a.json")  # builds the filesystem client
    assert "fs" in store._clients
    copy = pickle.loads(pickle.dumps(store))
    assert copy._clients == {}
    assert (copy.uri, copy.options) == (store.uri, store.options)
    assert copy == store
    assert copy.read_json("a.json") == {"n": 1}
    assert copy.exists("a.json")
    assert copy.list("") == ["a.json"]


def test_check_on_a_writable_directory(tmp_path: Path) -> None:
    Store(str(tmp_path / "not" / "yet" / "there")).check()  # creatable below tmp_path
    Store(str(tmp_path)).check()


@pytest.mark.skipif(not os.path.isdir("/proc/sys"), reason="needs Linux's /proc/sys")
def test_check_on_a_read_only_directory() -> None:
    # /proc/sys refuses writes even to root (the kernel's sysctl permission check; read-only in containers)
    with pytest.raises(StoreError, match=r"not writable \(checked /proc/sys\)"):
        Store("/proc/sys/tamis-store/runs").check()


# --- resolving inputs ---------------------------------------------------------------------------


def test_resolve_inputs_sorted_with_sizes(tmp_path: Path) -> None:
    for name, content in (("b.jsonl", "bb"), ("a.jsonl", "a"), ("c.parquet", "ccc")):
        touch(tmp_path / "in" / name, content)
    files = resolve_inputs([str(tmp_path / "in" / "*.jsonl")], S3Options())
    assert [f.uri for f in files] == [str(tmp_path / "in" / n) for n in ("a.jsonl", "b.jsonl")]
    assert [f.size for f in files] == [1, 2]
    assert all(isinstance(f, InputFile) and f.version for f in files)


def test_resolve_inputs_deduplicates_overlapping_patterns(tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.jsonl", "c.jsonl.gz"):
        touch(tmp_path / "in" / name)
    base = tmp_path / "in"
    files = resolve_inputs([str(base / "b.jsonl"), str(base / "*.jsonl"), str(base / "*"),
                            str(base / "[ab].jsonl")], S3Options())
    assert [f.uri for f in files] == [str(base / n) for n in ("a.jsonl", "b.jsonl", "c.jsonl.gz")]


def test_resolve_inputs_plain_file_and_no_match(tmp_path: Path) -> None:
    touch(tmp_path / "one.jsonl")
    assert [f.uri for f in resolve_inputs([str(tmp_path / "one.jsonl")], S3Options())] == [
        str(tmp_path / "one.jsonl")]
    assert resolve_inputs([str(tmp_path / "*.parquet")], S3Options()) == []
    assert resolve_inputs([str(tmp_path / "missing" / "*.jsonl")], S3Options()) == []
    assert resolve_inputs([str(tmp_path / "absent.jsonl")], S3Options()) == []


def test_resolve_inputs_glob_in_a_directory_part(tmp_path: Path) -> None:
    for part in ("2024-01", "2024-02", "2023-12"):
        touch(tmp_path / part / "x.jsonl")
    files = resolve_inputs([str(tmp_path / "2024-*" / "x.jsonl")], S3Options())
    assert [f.uri for f in files] == [str(tmp_path / p / "x.jsonl") for p in ("2024-01", "2024-02")]


def test_resolve_inputs_relative_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "data" / "a.jsonl")
    monkeypatch.chdir(tmp_path)
    assert [f.uri for f in resolve_inputs(["data/*.jsonl"], S3Options())] == [
        str(tmp_path / "data" / "a.jsonl")]


def test_resolve_inputs_star_does_not_cross_directories(tmp_path: Path) -> None:
    touch(tmp_path / "in" / "a.jsonl")
    touch(tmp_path / "in" / "sub" / "b.jsonl")
    files = resolve_inputs([str(tmp_path / "in" / "*.jsonl")], S3Options())
    assert [f.uri for f in files] == [str(tmp_path / "in" / "a.jsonl")]


def test_input_version_changes_when_a_file_is_rewritten(tmp_path: Path) -> None:
    path = touch(tmp_path / "a.jsonl", "one")
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    (before,) = resolve_inputs([str(path)], S3Options())
    (same,) = resolve_inputs([str(path)], S3Options())
    assert same == before
    path.write_text("two")
    os.utime(path, ns=(1_700_000_001_000_000_000, 1_700_000_001_000_000_000))
    (after,) = resolve_inputs([str(path)], S3Options())
    assert after.uri == before.uri and after.size == before.size
    assert after.version != before.version
    assert after.version == str(1_700_000_001_000_000_000)


def test_directory_input_means_its_data_files(tmp_path: Path) -> None:
    for name in ("a.jsonl.gz", "sub/b.jsonl", "README.md", "sub/c.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    got = [Path(f.uri).relative_to(tmp_path).as_posix() for f in resolve_inputs([str(tmp_path)], S3Options(), "jsonl")]
    assert got == ["a.jsonl.gz", "sub/b.jsonl"]


def test_directory_input_finds_every_compression_the_reader_decodes(tmp_path: Path) -> None:
    from jobs.input_files import _ARROW_CODECS

    decoded = {".gz", *_ARROW_CODECS}
    assert decoded == set(JSONL_COMPRESSIONS) - {""}
    names = sorted(stem + c for c in decoded for stem in (".jsonl", ".ndjson"))
    for i, name in enumerate(names):
        (tmp_path / f"f{i}{name}").write_text("x")
    (tmp_path / "notes.json").write_text("x")
    got = resolve_inputs([str(tmp_path)], S3Options(), "jsonl")
    assert len(got) == len(names) == 8


def test_double_star_spans_directories(tmp_path: Path) -> None:
    for name in ("a.jsonl", "x/b.jsonl", "x/y/c.jsonl", "x/y/c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    got = [Path(f.uri).relative_to(tmp_path).as_posix()
           for f in resolve_inputs([str(tmp_path / "**" / "*.jsonl")], S3Options())]
    assert got == ["a.jsonl", "x/b.jsonl", "x/y/c.jsonl"]
