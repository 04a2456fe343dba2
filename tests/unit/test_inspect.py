"""`tamis show` and `tamis diff` on real demo runs in a local store (built without Ray), and the
one-line errors of all three read-only commands."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jobs import cli, stage_rows
from jobs.checkpoint import commit_key, stage_prefix
from jobs.store import Store
from tests.support.inspect_stores import (WORD_COUNT_RULE, FailingExecutor, run_without_ray, stage_entry, stage_table,
                                          write_config)


class Runs:
    """A store with three demo runs: ``base``, ``strict`` (words >= 200) and ``killed`` (its
    filter never ran)."""

    def __init__(self, root: Path) -> None:
        self.store_uri = str(root / "store")
        self.store = Store(self.store_uri)
        self.config = write_config(root, "demo.yaml", self.store_uri)
        self.base = run_without_ray(self.config, "base")
        self.strict = run_without_ray(self.config, "strict", [f"{WORD_COUNT_RULE}=quality_word_count >= 200"])
        self.killed = run_without_ray(self.config, "killed", [f"{WORD_COUNT_RULE}=quality_word_count >= 120"],
                                      FailingExecutor())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("inspect"))


def tamis(capsys: pytest.CaptureFixture[str], runs: Runs, *argv: str) -> tuple[int, str, str]:
    """`tamis ARGV --store <the runs' store>`: exit status, stdout, stderr."""
    code = cli.main([*argv, "--store", runs.store_uri])
    out, err = capsys.readouterr()
    return code, out, err


def jsonl(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


# -- show ----------------------------------------------------------------------------------------------
def test_show_jsonl_gives_the_stage_logical_rows_as_part_reader_joins_them(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "show", "base", "filter", "--format", "jsonl", "--limit", "0")
    expected = stage_table(runs.store, runs.base, "filter")  # row files joined back to heuristics and read
    assert code == 0 and expected.num_rows == stage_entry(runs.base, "filter")["rows_out"]
    assert jsonl(out) == expected.to_pylist()


def test_show_table_previews_text_on_one_line_and_stops_at_the_limit(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "show", "base", "read", "--columns", "id,text", "--limit", "3",
                         "--where", "source == 'python-django-doc'")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "text"] and set(lines[1]) <= {"-", " "}
    rows = stage_table(runs.store, runs.base, "read")
    first = rows.filter(pc.equal(rows["source"], "python-django-doc")).slice(0, 3)
    for line, doc, text in zip(lines[2:5], first["id"].to_pylist(), first["text"].to_pylist(), strict=True):
        shown = line[line.index(doc) + len(doc):].strip()
        assert len(text) > 60 and len(shown) == 60 and shown.endswith("…") and "⏎" in shown
        assert shown[:-1] == text.replace("\n", "⏎")[:59]
    assert lines[5] == "" and lines[6] == "3 rows of stage read of run base (--limit reached; there may be more)"


def test_show_where_uses_the_filter_expression_language(capsys, runs: Runs) -> None:
    where = "quality_word_count < 300 and source in ['sqlite3-doc', 'git-doc']"
    code, out, _ = tamis(capsys, runs, "show", "base", "heuristics", "--where", where,
                         "--columns", "id,quality_word_count", "--format", "jsonl", "--limit", "0")
    rows = stage_table(runs.store, runs.base, "heuristics")
    mask = pc.and_(pc.less(rows["quality_word_count"], 300),
                   pc.is_in(rows["source"], pa.array(["sqlite3-doc", "git-doc"])))
    expected = rows.filter(mask).select(["id", "quality_word_count"]).to_pylist()
    assert code == 0 and 0 < len(expected) < rows.num_rows
    assert jsonl(out) == expected


def test_show_columns_keeps_their_order(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "show", "base", "exact_dedup.keep", "--columns",
                         "dedup_exact_keep,id", "--format", "jsonl", "--limit", "5")
    assert code == 0 and [list(r) for r in jsonl(out)] == [["dedup_exact_keep", "id"]] * 5


def test_show_a_composite_by_name_is_its_last_part(capsys, runs: Runs) -> None:
    _, by_composite, _ = tamis(capsys, runs, "show", "base", "exact_dedup", "--limit", "4")
    _, by_part, _ = tamis(capsys, runs, "show", "base", "exact_dedup.keep", "--limit", "4")
    assert by_composite == by_part and "dedup_exact_count" in by_part


def test_show_rejected_gives_each_row_with_its_drop_reason(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "show", "base", "filter", "--rejected", "--format", "jsonl", "--limit", "0")
    rows = jsonl(out)
    assert code == 0 and list(rows[0])[0] == "drop_reason"  # the reason leads
    assert Counter(r["drop_reason"] for r in rows) == Counter(stage_entry(runs.base, "filter")["dropped"])
    assert {r["id"] for r in rows} == set(stage_table(runs.store, runs.base, "filter", rejected=True)["id"].to_pylist())


def test_show_rejected_read_rows_print_their_raw_bytes_as_text(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "show", "base", "read", "--rejected",
                         "--where", "drop_reason == 'read:invalid_utf8'",
                         "--columns", "id,raw", "--format", "jsonl")
    [row] = jsonl(out)
    assert code == 0 and row["drop_reason"] == "read:invalid_utf8" and "\\xe9" in row["raw"]


def test_show_parquet_writes_the_rows_to_out(capsys, runs: Runs, tmp_path: Path) -> None:
    out_file = tmp_path / "kept.parquet"
    code, out, _ = tamis(capsys, runs, "show", "base", "filter", "--where", "quality_word_count >= 1000",
                         "--format", "parquet", "--out", str(out_file), "--limit", "0")
    rows = stage_table(runs.store, runs.base, "filter")
    expected = rows.filter(pc.greater_equal(rows["quality_word_count"], 1000))
    assert code == 0 and out.strip() == f"wrote {expected.num_rows:,} rows of stage filter of run base to {out_file}"
    assert pq.read_table(out_file).to_pylist() == expected.to_pylist()


def test_show_stops_reading_once_the_limit_is_out(capsys, runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = stage_rows.iter_file_batches

    def counting(store: Store, key: str, *args: Any, **kwargs: Any):
        opened.append(key)
        return real(store, key, *args, **kwargs)

    monkeypatch.setattr(stage_rows, "iter_file_batches", counting)
    code, out, _ = tamis(capsys, runs, "show", "base", "filter", "--limit", "2", "--format", "jsonl")
    assert code == 0 and len(jsonl(out)) == 2
    entry = stage_entry(runs.base, "filter")
    files = runs.store.read_json(commit_key(stage_prefix("filter", entry["fingerprint"])))["files"]
    assert len(files) == 2 and opened == [files[0]["key"]]  # the second file is never opened


# -- diff ----------------------------------------------------------------------------------------------
def _kept(runs: Runs, state: dict[str, Any]) -> set[str]:
    return set(stage_table(runs.store, state, "filter")["id"].to_pylist())


def test_diff_counts_the_documents_a_stricter_rule_removed_by_reason(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "diff", "base", "strict")
    base, strict = _kept(runs, runs.base), _kept(runs, runs.strict)
    only_base = base - strict
    assert code == 0 and only_base and not strict - base
    assert (f"kept in both: {len(base & strict):,}   only in base: {len(only_base):,}   only in strict: 0"
            in out.splitlines())
    rejected = stage_table(runs.store, runs.strict, "filter", rejected=True)
    reasons = Counter(r for i, r in zip(rejected["id"].to_pylist(), rejected["drop_reason"].to_pylist())
                      if i in only_base)
    assert reasons == {"quality:word_count": len(only_base)}
    section = out.split("kept by base, not by strict:")[1].split("kept by strict")[0]
    assert f"quality:word_count at filter: {len(only_base)}" in section
    examples = re.findall(r"^    (\S+)  \"", section, re.MULTILINE)
    assert len(examples) == 3 and set(examples) <= only_base
    assert "kept by strict, not by base: 0" in out


def test_diff_after_a_stage_compares_what_each_run_kept_there(capsys, runs: Runs) -> None:
    code, out, _ = tamis(capsys, runs, "diff", "strict", "base", "--stage", "heuristics", "--examples", "1")
    rows = stage_entry(runs.base, "heuristics")["rows_out"]
    assert code == 0 and f"kept in both: {rows:,}   only in strict: 0   only in base: 0" in out


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, names", [
    (["show", "nope", "filter"], ["no run 'nope'", "runs there: base, killed, strict"]),
    (["diff", "base", "nope"], ["no run 'nope'", "base, killed, strict"]),
    (["explain", "nope", "x"], ["no run 'nope'", "base, killed, strict"]),
    (["show", "base", "dedup"], ["no stage 'dedup'", "read, exact_dedup.hash, exact_dedup.keep, heuristics, filter"]),
    (["diff", "base", "strict", "--stage", "mix"], ["no stage 'mix'", "its stages: read, exact_dedup.hash"]),
    (["show", "base", "filter", "--where", "quality_word_count >"], ["--where: syntax error", "allowed:"]),
    (["show", "base", "filter", "--where", "text.upper()"], ["--where: unsupported call", "at column 0"]),
    (["show", "base", "filter", "--where", "text > 3"], ["cannot evaluate 'text > 3'"]),
    (["show", "base", "filter", "--columns", "id,score"], ["no column score in the rows of stage filter of run base",
                                                           "its columns: id, text, source"]),
    (["show", "base", "read", "--rejected", "--where", "quality_word_count > 3"],
     ["no column quality_word_count in the rejected rows of stage read", "drop_reason, input_uri, input_line, raw"]),
    (["explain", "base", "no-such-id"], ["no document 'no-such-id' in run base", "ids such as"]),
    (["show", "killed", "filter"], ["stage filter of run killed is not committed yet",
                                    "committed: read, exact_dedup.hash, exact_dedup.keep, heuristics"]),
    (["diff", "base", "killed"], ["stage filter of run killed is not committed yet"]),
    (["show", "base", "filter", "--format", "parquet"], ["--format parquet writes to --out FILE"]),
])
def test_bad_input_is_one_error_line_naming_what_exists(capsys, runs: Runs, argv: list[str], names: list[str]) -> None:
    code, out, err = tamis(capsys, runs, *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err


def test_explain_stops_at_a_stage_not_committed_yet(capsys, runs: Runs) -> None:
    doc = stage_table(runs.store, runs.base, "filter")["id"][0].as_py()
    code, out, _ = tamis(capsys, runs, "explain", "killed", doc)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"document {doc} in run killed (demo): filter: not committed yet (status failed)"
    assert lines[-1].split(None, 1) == ["filter", "not committed yet (status failed)"]
    assert "heuristics        kept" in lines


def test_config_names_the_store(capsys, runs: Runs) -> None:
    code = cli.main(["show", "base", "filter", "--config", str(runs.config), "--limit", "1", "--format", "jsonl"])
    out, _ = capsys.readouterr()
    assert code == 0 and jsonl(out) == stage_table(runs.store, runs.base, "filter").slice(0, 1).to_pylist()
