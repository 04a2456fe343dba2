"""Integration fixtures: a real local Ray, a real S3 protocol server on loopback, run helpers."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.scheduler import RunScheduler
from jobs.pipeline_load import Pipeline, load_pipeline
from jobs.store import Store
from tests.conftest import write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local")
    yield
    ray.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """An S3 protocol server on loopback for the module; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server reset to empty for each test, with dummy credentials in this process."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    yield moto_server


def run_config(tmp_path: Path, raw: dict[str, Any], run_id: str = "test",
               overrides: list[str] | None = None) -> tuple[Pipeline, dict[str, Any]]:
    """Validate ``raw`` and run it in-process (Ray Data from this driver); returns the final state."""
    config = write_config(tmp_path / f"{run_id}.yaml", raw)
    pipeline = load_pipeline(str(config), overrides)
    state = RunScheduler(pipeline.spec, run_id).run()
    return pipeline, state


def read_output(pipeline: Pipeline, state: dict[str, Any]) -> pa.Table:
    """The run's output shards concatenated in shard order."""
    out = Store(state["output"]["uri"], pipeline.spec.s3_options())
    keys = sorted(k for k in out.list("") if k.rsplit("/", 1)[-1].startswith("part-"))  # split folders too
    tables = [pq.read_table(out.fs_path(k), filesystem=out.fs) for k in keys]
    return pa.concat_tables(tables) if tables else pa.table({})


def read_rejected(pipeline: Pipeline) -> pa.Table:
    """Every rejected row of every stage in the store."""
    store = pipeline.spec.make_store()
    keys = [k for k in store.list("stages") if "/rejected/" in k and k.endswith(".parquet")]
    tables = [pq.read_table(store.fs_path(k), filesystem=store.fs).select(["id", "drop_reason"]) for k in keys]
    return pa.concat_tables(tables) if tables else pa.table({"id": [], "drop_reason": []})
