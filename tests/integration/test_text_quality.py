"""text_quality_score through a real local Ray: calibrate (fit) -> score (map) -> filter."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from operators.quality.text_quality import TextQualityConfig, TextQualityScoreCalibrated
from tests.conftest import demo_config
from tests.integration.conftest import read_output, read_rejected, run_config

pytestmark = pytest.mark.integration


def test_calibrated_text_quality_score_then_filter(ray_local: None, tmp_path: Path) -> None:
    config = {"calibrate": {"reference_source": "python-django-doc"}}
    raw = demo_config(store=str(tmp_path / "store"), execution={"wave_mb": 64})  # one wave
    raw["stages"] = [{"op": "text_quality_score", "config": config},
                     {"op": "filter", "config": {"expr": "quality_text_score >= 0.8"}}]
    pipeline, state = run_config(tmp_path, raw, run_id="tq")
    names = [s["name"] for s in state["stages"]]
    assert names[1:] == ["text_quality_score.calibrate", "text_quality_score.score", "filter"]

    store = pipeline.spec.make_store()
    [key] = [k for k in store.list("stages") if "/artifact/" in k]
    artifact = pq.read_table(store.fs_path(key))
    assert artifact.num_rows == 14 and artifact["fitted"][0].as_py()
    assert artifact["reference_documents"][0].as_py() > 0 < artifact["contrast_documents"][0].as_py()

    output = read_output(pipeline, state)
    rejected = read_rejected(pipeline)
    dropped = rejected.filter(pc.equal(rejected["drop_reason"], "quality:text_score"))
    read = state["stages"][0]["rows_out"]
    assert output.num_rows + dropped.num_rows == read and output.num_rows > 0 < dropped.num_rows
    assert min(output["quality_text_score"].to_pylist()) >= 0.8
    # the workers' scores are the operator's own, with the artifact the fit wrote
    again = TextQualityScoreCalibrated(TextQualityConfig(**config), artifact)(
        output.select(["text"]))
    assert again["quality_text_score"].to_pylist() == output["quality_text_score"].to_pylist()
