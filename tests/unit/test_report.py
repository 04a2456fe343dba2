"""The text tables of `tamis status` and the run summary."""

from __future__ import annotations

from jobs.report import render_status, render_summary


def state() -> dict:
    stage = {"kind": "map", "waves_done": 1, "waves_total": 1, "seconds": 0.25, "error": None}
    return {
        "run_id": "r", "pipeline": "p", "status": "succeeded", "updated_at": None, "wall_seconds": 3.5,
        "stages": [
            {**stage, "name": "read", "kind": "read", "status": "committed", "rows_in": 10, "rows_out": 9,
             "dropped": {"read:empty_text": 1}},
            {**stage, "name": "minhash_dedup.signature", "status": "cached", "rows_in": 9, "rows_out": 9,
             "dropped": {}, "info": {"bands": 14, "rows": 8}, "metrics": {}},
            {**stage, "name": "minhash_dedup.keep", "kind": "group", "status": "committed", "rows_in": 9,
             "rows_out": 9, "dropped": {}, "metrics": {"verified_pairs": 3, "verify_seconds": 0.031}},
        ],
        "output": {"uri": "/out", "manifest": "/out/_MANIFEST.json", "rows": 9},
    }


def test_status_lists_stages_with_info_and_metrics() -> None:
    text = render_status(state())
    assert "run r (p): succeeded" in text
    assert "minhash_dedup.signature: bands=14, rows=8" in text
    assert "minhash_dedup.keep: verified_pairs=3, verify_seconds=0.031" in text
    assert "manifest: /out/_MANIFEST.json" in text


def test_summary_counts_removals_per_reason() -> None:
    text = render_summary(state())
    assert "read:empty_text" in text and "(cached)" in text
    assert "documents in: 10   out: 9   wall time: 3.5s" in text


def test_status_shows_a_mix_per_group() -> None:
    s = state()
    s["stages"].append({"name": "mix.plan", "kind": "fit", "status": "committed", "waves_done": 0, "waves_total": 1,
                        "rows_in": 9, "rows_out": 9, "dropped": {}, "seconds": 0.1, "error": None,
                        "metrics": {"budget_tokens": 100.0, "group.web.target_tokens": 60.0, "group.web.epochs": 0.5,
                                    "group.3.5.target_tokens": 40.0, "group.3.5.epochs": 2.0}})
    text = render_status(s)
    assert "mix.plan: budget_tokens=100.0" in text and "group.web" not in text
    lines = text.split("mix.plan per group:\n")[1].splitlines()
    assert lines[0].split() == ["group", "target", "tokens", "epochs"]
    assert lines[2].split() == ["3.5", "40", "2"] and lines[3].split() == ["web", "60", "0.5"]


def test_every_operator_renders_even_with_required_fields() -> None:
    from jobs.report import render_operator
    from operators import registry

    for name, required in (("mix", "budget_tokens"), ("quantiles", "(required)"), ("mix.plan", "budget_tokens")):
        text = render_operator(name)  # neither config validates without arguments
        assert text.startswith(name) and required in text
    assert "runs as: mix.tokens (map) -> mix.plan (fit) -> mix.sample (map) -> mix.shuffle (group)" in \
        render_operator("mix")
    for name in registry.names():
        render_operator(name)


def test_an_incremental_run_says_what_it_read_and_when_nothing_was_new() -> None:
    from jobs.report import render_status, render_summary

    seen = {"state": "crawl", "version": 4, "new": 0, "changed": 0, "unchanged": 7}
    state = {"run_id": "crawl-2026-12-06", "pipeline": "crawl", "status": "succeeded", "stages": [],
             "nothing_new": True, "input_files": seen, "output": None}
    status = render_status(state)
    assert "input state crawl (version 4): 0 new, 0 changed, 7 unchanged file(s) skipped" in status
    assert "nothing new to read; no output written" in status and "rows in" not in status
    assert render_summary(state).startswith("nothing new: all 7 input file(s) were read by earlier runs")
