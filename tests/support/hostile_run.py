"""Running hostile input through the demo pipeline's shape and accounting for every record (issue 21).

The pipeline is configs/demo.yaml's shape plus both dedups (read -> exact_dedup ->
minhash_dedup -> heuristics -> filter that drops only duplicates). A run either completes
with every record accounted for against a ground-truth table (tests/support/hostile_inputs.py,
which states the conventions asserted), or stops with a one-line error naming the file
(``jobs.cli.root_cause``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.cli import root_cause
from tests.integration.conftest import read_output, run_config
from tests.support.hostile_inputs import Record, Texts, account, read_all_rejected


LIMIT = 4000  # input.max_text_bytes
TEXTS = Texts()
DUP = "read:duplicate_id"
MALFORMED = "read:malformed_json"
INVALID = "read:invalid_utf8"


def pipeline(tmp_path: Path, paths: list[str], fmt: str = "jsonl", **input_extra: Any) -> dict[str, Any]:
    """configs/demo.yaml's shape with configs/dedup.yaml's dedups; the filter drops only duplicates."""
    return {
        "name": "hostile", "store": str(tmp_path / "store"),
        "input": {"paths": paths, "format": fmt, "max_text_bytes": LIMIT, **input_extra},
        "stages": [
            {"op": "exact_dedup", "config": {"scope": "source"}},
            {"op": "minhash_dedup", "config": {"threshold": 0.7, "ngram": 5, "scope": "source", "verify": True,
                                               "keep": "min_id"}},
            {"op": "heuristics"},
            {"op": "filter", "config": {"rules": [{"keep": "dedup_exact_keep", "reason": "dedup:exact"},
                                                  {"keep": "dedup_minhash_keep", "reason": "dedup:minhash"}]}},
        ],
        "output": {"format": "parquet"},
        "execution": {"batch_rows": 8, "part_rows": 24},
    }


def run_and_account(tmp_path: Path, raw: dict[str, Any], records: list[Record],
                    corrupt_files: tuple[str, ...] = ()) -> tuple[dict[str, Any], pa.Table]:
    """Run ``raw``, which must complete; then :func:`check_accounting`."""
    pipeline_, state = run_config(tmp_path, raw)
    return state, check_accounting(tmp_path, pipeline_, state, records, corrupt_files)


def check_accounting(tmp_path: Path, pipeline_: Any, state: dict[str, Any], records: list[Record],
                     corrupt_files: tuple[str, ...] = ()) -> pa.Table:
    """Every record got an allowed outcome, and the run's counts are those of its files; the output."""
    output = read_output(pipeline_, state)
    rejected = read_all_rejected(tmp_path / "store")
    result = account(records, output, rejected, corrupt_files)
    assert not result.problems, ("\n".join(result.problems) + "\n\nevery record:\n" + result.table())
    # the counts the run reports (run.json, the manifest's funnel) are those of the files
    dropped: Counter[str] = Counter()
    for stage in state["stages"]:
        dropped.update(stage.get("dropped") or {})
    assert +dropped == Counter(rejected["drop_reason"].to_pylist()), (dropped, rejected["drop_reason"].value_counts())
    read = next(s for s in state["stages"] if s["name"] == "read")
    read_rows = sum(1 for r in records if r.outcomes) + sum(result.corrupt_rows.values())
    assert read["rows_in"] == read_rows, (read["rows_in"], read_rows)
    return output


def assert_stopped_naming(err: BaseException, *names: str) -> None:
    """A stopped run's cause is one line naming one of ``names``, not a library's bare error."""
    cause = root_cause(err)
    assert "\n" not in cause, cause
    assert any(n in cause for n in names), f"the error does not name the file ({' or '.join(names)}): {cause}"


