"""A run whose input and store sit behind an S3 endpoint that answers 503 SlowDown, delays,
and drops connections after passing requests on (tests/support/s3_faults.py, seeded, 5 %
each): it completes with the output of a fault-free run, every commit it left names only
files that are there, and a rerun reuses every commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from jobs.store import Store
from tests.conftest import SAMPLE, demo_config
from tests.integration.conftest import read_output, run_config
from tests.integration.test_s3 import BUCKET, s3_options
from tests.support.s3_faults import FaultyS3

pytestmark = pytest.mark.integration


@pytest.fixture
def faulty(s3_endpoint: str) -> Iterator[FaultyS3]:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(SAMPLE.glob("*.jsonl.gz")):
        client.upload_file(str(path), BUCKET, f"input/{path.name}")
    proxy = FaultyS3(s3_endpoint, seed=7, max_delay_s=0.2)
    yield proxy
    proxy.close()


def pipeline(endpoint: str, store: str) -> dict[str, Any]:
    """The demo's stages and a MinHash stage (two shuffles through the store), small waves."""
    raw = demo_config(store=f"s3://{BUCKET}/{store}", store_options=s3_options(endpoint))
    raw["input"]["paths"] = [f"s3://{BUCKET}/input/*.jsonl.gz"]
    raw["stages"].insert(2, {"op": "minhash_dedup", "config": {"threshold": 0.7}})
    raw["stages"][-1]["config"]["rules"].append({"keep": "dedup_minhash_keep", "reason": "dedup:minhash"})
    raw["execution"] = {"wave_mb": 0.3}
    return raw


def test_a_run_through_a_faulty_s3_endpoint_ends_as_a_fault_free_one(ray_local: None, faulty: FaultyS3,
                                                                     s3_endpoint: str, tmp_path: Path) -> None:
    clean_pipeline, clean = run_config(tmp_path, pipeline(s3_endpoint, "clean"), run_id="clean")
    faulty_pipeline, state = run_config(tmp_path, pipeline(faulty.url, "faulty"), run_id="faulty")
    assert state["status"] == "succeeded"
    assert faulty.counts["slow_down"] >= 5 and faulty.counts["drop"] >= 5 and faulty.counts["delay"] >= 5, faulty.counts

    out, expected = read_output(faulty_pipeline, state), read_output(clean_pipeline, clean)
    assert out.num_rows > 0 and out.sort_by("id").equals(expected.sort_by("id"))
    assert [(s["name"], s["rows_out"], s["dropped"]) for s in state["stages"]] == \
        [(s["name"], s["rows_out"], s["dropped"]) for s in clean["stages"]]

    # every commit names only files that are there, with the rows it says
    store = Store(f"s3://{BUCKET}/faulty", faulty_pipeline.spec.s3_options())
    commits = [k for k in store.list("stages") if k.endswith("_COMMIT.json")]
    assert commits
    present = set(store.list("stages"))
    for key in commits:
        body = store.read_json(key)
        named = [f["key"] for f in (body.get("files") or []) + (body.get("rejected") or [])]
        assert set(named) <= present, (key, sorted(set(named) - present)[:3])

    _, again = run_config(tmp_path, pipeline(faulty.url, "faulty"), run_id="faulty")
    assert {s["status"] for s in again["stages"]} == {"cached"}
