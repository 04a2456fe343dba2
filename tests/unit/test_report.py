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
