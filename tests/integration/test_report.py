"""The run report through the command line: `tamis run` of the demo pipeline writes
runs/<id>/report.html when it succeeds (not with --no-report), and `tamis report --out` writes
a page whose figures are run.json's and the manifest's, with nothing loaded from outside and a
planted ``<script>`` shown as text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from jobs.cli import main
from jobs.pipeline_load import load_pipeline
from tests.conftest import REPO, demo_config, write_config
from tests.support import inspect_stores
from tests.support.html_page import Page

pytestmark = pytest.mark.integration

PLANTED = {"id": "planted-script", "source": "<b>hostile</b>",
           # passes every demo rule but the symbol ratio (each `#` counts): removed, and one of the
           # three quality:symbol_word_ratio documents, so its preview is on the page
           "text": "<script>alert('report')</script> " + " ".join(f"page{n}# note" for n in range(40))}


def _tamis(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_run_writes_the_report_and_tamis_report_agrees_with_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    planted = tmp_path / "input" / "planted.jsonl"
    planted.parent.mkdir()
    planted.write_text(json.dumps(PLANTED) + "\n")
    raw = demo_config(store=str(store))
    raw["input"]["paths"].append(str(planted))
    config = write_config(tmp_path / "demo.yaml", raw)
    written = store / "runs" / "demo" / "report.html"

    quiet = _tamis("run", str(config), "--no-report")
    assert quiet.returncode == 0, quiet.stderr
    assert not written.exists() and "report:" not in quiet.stdout
    again = _tamis("run", str(config))  # every stage cached, the output up to date: the report is still made
    assert again.returncode == 0, again.stderr
    assert written.is_file() and f"report:   {written}" in again.stdout

    out = tmp_path / "report.html"
    assert main(["report", "demo", "--store", str(store), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    page = Page(html)
    state = json.loads((store / "runs" / "demo" / "run.json").read_text())
    manifest = json.loads(Path(state["output"]["manifest"]).read_text())

    funnel = {row["data-stage"]: {c["data-field"]: c["data-value"] for c in cells if "data-field" in c}
              for row, cells in page.rows if "data-stage" in row}
    assert list(funnel) == [s["name"] for s in state["stages"]] + ["output"]
    for entry, stage in zip(manifest["funnel"], state["stages"]):
        shown = funnel[entry["stage"]]
        assert int(shown["rows_in"]) == entry["rows_in"] == stage["rows_in"]
        assert int(shown["rows_out"]) == entry["rows_out"] == stage["rows_out"]
        assert int(shown["removed"]) == sum(entry["dropped"].values()) == sum(stage["dropped"].values())
    assert int(funnel["output"]["rows_out"]) == manifest["rows_out"] == state["output"]["rows"]

    dropped = {reason: n for s in manifest["funnel"] for reason, n in s["dropped"].items()}
    reasons = {row["data-reason"]: int(cells[2]["data-value"]) for row, cells in page.rows if "data-reason" in row}
    assert reasons == dropped and "quality:symbol_word_ratio" in dropped
    assert set(page.values("data-reason")) >= set(dropped)  # each reason has its removed documents shown

    quality = [c["name"] for c in manifest["schema"] if c["name"].startswith("quality_")]
    assert len(quality) == 8 and page.values("data-column") == quality
    assert page.tags["figure"] == len(quality)  # one plot per signal column, each an inline SVG
    assert page.tags["svg"] >= len(quality) + 3

    for tag, name, value in page.attributes:
        if name in ("src", "href", "xlink:href", "action"):
            assert not value.startswith(("http://", "https://", "//")), (tag, name, value)
    assert page.tags["script"] == 0 and page.tags["link"] == 0 and page.tags["iframe"] == 0
    assert "<script" not in html.lower() and "<b>hostile" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;b&gt;hostile&lt;/b&gt;" in html
    assert "planted-script" in "".join(page.text)  # the planted document is among those shown


def test_the_report_of_a_store_on_s3(s3_endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run on a real S3 protocol server (moto, loopback), built without Ray: `tamis report
    --config` reads it through the store and writes into it, or to an s3:// --out."""
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="runs")
    options = {"endpoint_url": s3_endpoint, "region": "us-east-1", "access_key_id": "testing",
               "secret_access_key": "testing"}
    config = inspect_stores.write_config(tmp_path, "dedup.yaml", "s3://runs/store", store_options=options)
    state = inspect_stores.run_without_ray(config, "mh")
    store = load_pipeline(str(config), check_io=False).spec.make_store()

    assert main(["report", "mh", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "report: s3://runs/store/runs/mh/report.html"
    assert main(["report", "mh", "--config", str(config), "--out", "s3://runs/elsewhere/mh.html"]) == 0
    with store.fs.open_input_stream("runs/elsewhere/mh.html") as f:
        elsewhere = f.read().decode()
    with store.fs.open_input_stream(store.fs_path("runs/mh/report.html")) as f:
        page = Page(f.read().decode())
    assert Page(elsewhere).values("data-stage") == page.values("data-stage")
    funnel = {row["data-stage"]: cells for row, cells in page.rows if "data-stage" in row}
    assert int(funnel["filter"][4]["data-value"]) == state["output"]["rows"]
    assert page.values("id").count("duplicates") == 1 and "near duplicates" in "".join(page.text)
