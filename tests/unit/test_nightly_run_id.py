"""Nightly run ids: the pipeline's name and the UTC date."""

from __future__ import annotations

import datetime as dt

from jobs.nightly import choose_run_id, nightly_run_id


def test_nightly_run_id_is_the_pipeline_and_the_utc_date() -> None:
    when = dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert nightly_run_id("crawl", when) == "crawl-2026-12-06"


def test_auto_and_nightly_give_tonights_id_else_the_given_one_or_the_pipelines() -> None:
    assert choose_run_id("auto", "crawl", False) == choose_run_id(None, "crawl", True) == nightly_run_id("crawl")
    assert choose_run_id("mine", "crawl", False) == "mine"
    assert choose_run_id(None, "crawl", False) == "crawl"
