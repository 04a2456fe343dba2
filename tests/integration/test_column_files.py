"""Column files in a real run: stages store only their columns, and the output is unchanged."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.parts import read_part
from tests.conftest import demo_config
from tests.integration.conftest import read_output, run_config

pytestmark = pytest.mark.integration


def _stage_files(pipeline: object, state: dict, name: str) -> list[str]:
    entry = next(s for s in state["stages"] if s["name"] == name)
    store = pipeline.spec.make_store()  # type: ignore[attr-defined]
    commit = store.read_json(f"stages/{name}-{entry['fingerprint']}/_COMMIT.json")
    return [f["key"] for f in commit["files"]]


def _codecs(store: object, key: str) -> set[str]:
    metadata = pq.read_metadata(store.fs_path(key))  # type: ignore[attr-defined]
    return {metadata.row_group(g).column(c).compression
            for g in range(metadata.num_row_groups) for c in range(metadata.num_columns)}


def test_column_files_and_codec_change_storage_not_results(ray_local: None, tmp_path: Path) -> None:
    runs = {}
    for column_files in (True, False):
        raw = demo_config(store=str(tmp_path / f"store-{column_files}"))
        # the second run also stores its checkpoints with zstd instead of the default lz4
        raw["execution"] = {**raw.get("execution", {}), "column_files": column_files,
                            **({} if column_files else {"checkpoint_compression": "zstd"})}
        runs[column_files] = run_config(tmp_path, raw, run_id=f"cols-{str(column_files).lower()}")

    outputs = {k: read_output(p, s).sort_by("id") for k, (p, s) in runs.items()}
    assert outputs[True].num_rows > 0
    assert outputs[True].equals(outputs[False])

    pipeline, state = runs[True]
    store = pipeline.spec.make_store()
    keys = _stage_files(pipeline, state, "heuristics")
    assert keys
    for key in keys:
        stored = pq.read_schema(store.fs_path(key)).names
        assert "text" not in stored and "quality_word_count" in stored  # only what heuristics wrote
        whole = read_part(store, key)
        assert {"id", "text", "source", "dedup_exact_keep", "quality_word_count"} <= set(whole.column_names)
        assert _codecs(store, key) == {"LZ4"}
    # without column files every stage file is self-contained
    pipeline, state = runs[False]
    store = pipeline.spec.make_store()
    assert all("text" in pq.read_schema(store.fs_path(k)).names for k in _stage_files(pipeline, state, "heuristics"))
    assert all(_codecs(store, k) == {"ZSTD"} for k in _stage_files(pipeline, state, "heuristics"))
