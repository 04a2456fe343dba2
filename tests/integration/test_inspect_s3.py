"""`tamis show | diff | explain` on a store on a real S3 protocol server (moto) on loopback,
the store and its options taken from the config (`--config`). The runs are built without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pyarrow.compute as pc
import pytest

from jobs import cli
from jobs.pipeline_load import load_pipeline
from tests.support.inspect_stores import WORD_COUNT_RULE, run_without_ray, stage_table, write_config

pytestmark = pytest.mark.integration


def test_the_read_only_commands_read_a_store_on_s3(s3_endpoint: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="runs")
    options = {"endpoint_url": s3_endpoint, "region": "us-east-1", "access_key_id": "testing",
               "secret_access_key": "testing"}
    config = write_config(tmp_path, "demo.yaml", "s3://runs/store", store_options=options)
    base = run_without_ray(config, "base")
    run_without_ray(config, "strict", [f"{WORD_COUNT_RULE}=quality_word_count >= 200"])
    store = load_pipeline(str(config), check_io=False).spec.make_store()

    assert cli.main(["show", "base", "filter", "--config", str(config), "--format", "jsonl", "--limit", "0"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown == stage_table(store, base, "filter").to_pylist()

    assert cli.main(["diff", "base", "strict", "--config", str(config)]) == 0
    assert "kept by base, not by strict" in capsys.readouterr().out

    rejected = stage_table(store, base, "filter", rejected=True)
    copy = rejected.filter(pc.equal(rejected["drop_reason"], "dedup:exact"))["id"][0].as_py()
    assert cli.main(["explain", "base", copy, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "removed at filter (dedup:exact)" in out and "exact duplicate of " in out
