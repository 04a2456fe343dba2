"""The code-point tables are built once per machine and loaded from a cache file after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from operators.dedup import code_points


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(code_points, "CACHE_DIR", tmp_path / "cache")
    code_points._tables.cache_clear()
    yield tmp_path / "cache"
    code_points._tables.cache_clear()  # later tests get tables of the default cache again


def test_tables_are_saved_then_loaded(cache_dir: Path) -> None:
    built = code_points._build_lower_map(), code_points._build_classes()
    lower, classes = code_points.lower_map(), code_points.code_point_classes()
    assert code_points.cache_path().parent == cache_dir and code_points.cache_path().exists()
    code_points._tables.cache_clear()
    loaded = code_points.lower_map(), code_points.code_point_classes()
    for got, want in zip((lower, classes, *loaded), built * 2):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_a_damaged_cache_file_is_rebuilt(cache_dir: Path) -> None:
    path = code_points.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not a zip")
    assert np.array_equal(code_points.code_point_classes(), code_points._build_classes())
    code_points._tables.cache_clear()
    np.load(path)["classes"]  # replaced by a good one


def test_an_unwritable_cache_only_costs_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")  # a directory inside a file cannot be made, even by root
    monkeypatch.setattr(code_points, "CACHE_DIR", tmp_path / "a-file" / "cache")
    code_points._tables.cache_clear()
    try:
        assert np.array_equal(code_points.lower_map(), code_points._build_lower_map())
        assert not code_points.cache_path().exists()
    finally:
        code_points._tables.cache_clear()


def test_the_file_name_follows_the_inputs(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = code_points.cache_path().name
    monkeypatch.setattr(code_points.pa, "__version__", "0.0.0")
    assert code_points.cache_path().name != name
