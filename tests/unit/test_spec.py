"""Unit tests of pipeline loading and validation (jobs/spec.py, jobs/pipeline_load.py); no Ray is started."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from jobs.spec import SpecError
from jobs.pipeline_load import apply_overrides, load_pipeline
from operators import registry
from operators.dedup.exact import ExactHash, ExactKeep
from operators.filtering.filter import Filter
from operators.quality.heuristics import Heuristics


@pytest.fixture
def inputs(tmp_path: Path) -> str:
    """A glob matching two small local JSONL files."""
    data = tmp_path / "data"
    data.mkdir()
    for n in range(2):
        (data / f"part-{n}.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    return str(data / "*.jsonl")


def config(tmp_path: Path, inputs: str, stages: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": "t", "store": str(tmp_path / "store"), "input": {"paths": [inputs]},
                           "stages": stages}
    raw.update(top)
    return raw


def write(tmp_path: Path, raw: Any, name: str = "pipeline.yaml") -> str:
    path = tmp_path / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def problems(path: str, overrides: list[str] | None = None, check_io: bool = False) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_pipeline(path, overrides, check_io=check_io)
    err = info.value
    assert path in str(err)
    assert all(p in str(err) for p in err.problems)
    return err.problems


def only(path: str, **kwargs: Any) -> str:
    found = problems(path, **kwargs)
    assert len(found) == 1, found
    return found[0]


# --- a valid pipeline -----------------------------------------------------------------------


def test_valid_pipeline_expands_composites(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [
        {"op": "exact_dedup", "config": {"scope": "global"}},
        {"op": "heuristics"},
        {"op": "filter", "config": {"rules": [{"keep": "dedup_exact_keep", "reason": "dedup:exact"},
                                              {"keep": "quality_word_count >= 1"}]}},
    ]))
    pipeline = load_pipeline(path, check_io=True)
    stages = pipeline.stages
    assert [s.name for s in stages] == ["exact_dedup.hash", "exact_dedup.keep", "heuristics", "filter"]
    assert [s.operator for s in stages] == [ExactHash, ExactKeep, Heuristics, Filter]
    assert [s.yaml_index for s in stages] == [0, 0, 1, 2]
    assert stages[0].config.scope == "global"
    assert stages[0].config is stages[1].config


def test_primitive_operator_name_with_dot(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "exact_dedup.hash"}]))
    (stage,) = load_pipeline(path, check_io=False).stages
    assert stage.name == "exact_dedup_hash"
    assert stage.operator is ExactHash


def test_duplicate_stage_names_get_suffixes(tmp_path: Path, inputs: str) -> None:
    rule = {"op": "filter", "config": {"expr": "text != ''"}}
    path = write(tmp_path, config(tmp_path, inputs, [rule, rule, {"op": "heuristics"}, rule,
                                                      {**rule, "name": "mine"}, {**rule, "name": "mine"}]))
    names = [s.name for s in load_pipeline(path, check_io=False).stages]
    assert names == ["filter", "filter_2", "heuristics", "filter_3", "mine", "mine_2"]


def test_stage_names_are_unique_even_with_an_explicit_suffix_name(tmp_path: Path, inputs: str) -> None:
    rule = {"op": "filter", "config": {"expr": "text != ''"}}
    path = write(tmp_path, config(tmp_path, inputs, [rule, {**rule, "name": "filter_2"}, rule]))
    names = [s.name for s in load_pipeline(path, check_io=False).stages]
    assert len(set(names)) == len(names), names


def test_relative_paths_become_absolute(tmp_path: Path, inputs: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, {"name": "t", "store": "./runs", "input": {"paths": ["data/*.jsonl"]},
                            "output": {"path": "out/curated"}})
    spec = load_pipeline(path, check_io=True).spec
    assert spec.store == str(tmp_path / "runs")
    assert spec.input.paths == [str(tmp_path / "data" / "*.jsonl")]
    assert spec.output.path == str(tmp_path / "out" / "curated")
    assert os.path.isabs(spec.make_store().uri)


def test_home_and_s3_paths(tmp_path: Path, inputs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write(tmp_path, {"name": "t", "store": "s3://bucket/prefix",
                            "input": {"paths": ["~/data/*.jsonl", "s3://bucket/in/*.jsonl"]}})
    spec = load_pipeline(path, check_io=False).spec
    assert spec.store == "s3://bucket/prefix"
    assert spec.input.paths == [inputs, "s3://bucket/in/*.jsonl"]


# --- one error each, naming the YAML path, what was given and what is allowed -------------------


def test_unknown_operator_lists_known_ones(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "heuristics"}, {"op": "minhash_dedupe"}]))
    message = only(path)
    assert message.startswith("stages[1].op:")
    assert "'minhash_dedupe'" in message
    for known in registry.names():
        assert known in message


def test_unknown_config_parameter_lists_allowed(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "exact_dedup", "config": {"bogus": 1}}]))
    message = only(path)
    assert message.startswith("stages[0].config.bogus:")
    assert "unknown parameter" in message
    assert "scope" in message


def test_mistyped_parameter(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "exact_dedup",
                                                      "config": {"scope": "everything"}}]))
    message = only(path)
    assert message.startswith("stages[0].config.scope:")
    assert "'everything'" in message
    assert "'source'" in message and "'global'" in message


def test_filter_reading_a_column_no_earlier_stage_writes(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [
        {"op": "filter", "config": {"expr": "quality_word_count >= 5"}},
        {"op": "heuristics"},
    ]))
    message = only(path)
    assert message.startswith("stages[0]:")
    assert "'quality_word_count'" in message
    assert "available: id, metadata, source, text" in message


def test_columns_written_by_an_earlier_stage_are_available(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [
        {"op": "heuristics"},
        {"op": "filter", "config": {"expr": "quality_word_count >= 5"}},
        {"op": "filter", "config": {"expr": "dedup_exact_keep"}},
    ]))
    message = only(path)
    assert message.startswith("stages[2]:")
    assert "'dedup_exact_keep'" in message
    assert "quality_word_count" in message  # listed as available
    assert "drop_reason" not in message  # not a column a rule may read


@pytest.mark.parametrize(("stage_config", "where"), [
    ({"expr": "quality_word_count >"}, "stages[0].config.expr:"),
    ({"rules": [{"keep": "text != ''"}, {"keep": "len(text) >>> 3"}]}, "stages[0].config.rules[1].keep:"),
])
def test_filter_expression_syntax_error(tmp_path: Path, inputs: str, stage_config: dict[str, Any],
                                        where: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "filter", "config": stage_config}]))
    message = only(path)
    assert message.startswith(where)
    assert "syntax error" in message
    assert "allowed:" in message


def test_filter_config_cross_field_error(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "filter"}]))
    message = only(path)
    assert message.startswith("stages[0].config:")
    assert "exactly one of 'expr' or 'rules'" in message


def test_missing_input_section(tmp_path: Path) -> None:
    path = write(tmp_path, {"name": "t", "stages": [{"op": "heuristics"}]})
    message = only(path)
    assert message.startswith("input:")
    assert "required" in message.lower()


def test_top_level_type_errors_name_their_path(tmp_path: Path, inputs: str) -> None:
    raw = config(tmp_path, inputs, [{"op": "heuristics", "name": "Bad Name"}],
                 execution={"batch_rows": 0}, output={"format": "csv"})
    found = problems(write(tmp_path, raw))
    assert len(found) == 3
    assert any(p.startswith("stages[0].name:") and "'Bad Name'" in p for p in found)
    assert any(p.startswith("execution.batch_rows:") and "0" in p for p in found)
    assert any(p.startswith("output.format:") and "'parquet'" in p and "'csv'" in p for p in found)


def test_on_corrupt_file_is_skip_or_fail(tmp_path: Path, inputs: str) -> None:
    assert load_pipeline(write(tmp_path, config(tmp_path, inputs, []))).spec.input.on_corrupt_file == "skip"
    raw = config(tmp_path, inputs, [])
    raw["input"]["on_corrupt_file"] = "fail"
    assert load_pipeline(write(tmp_path, raw)).spec.input.on_corrupt_file == "fail"
    raw["input"]["on_corrupt_file"] = "ignore"
    message = only(write(tmp_path, raw))
    assert message.startswith("input.on_corrupt_file:") and "'ignore'" in message
    assert "'skip'" in message and "'fail'" in message


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    assert only(str(tmp_path / "absent.yaml")) == "file not found"
    assert only(write(tmp_path, "name: [unclosed\n", "bad.yaml")).startswith("not valid YAML")
    assert "mapping" in only(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_input_glob_matching_no_file(tmp_path: Path, inputs: str) -> None:
    pattern = str(tmp_path / "data" / "*.parquet")
    path = write(tmp_path, config(tmp_path, pattern, []))
    message = only(path, check_io=True)
    assert message.startswith("input.paths:")
    assert "no file matches" in message and pattern in message
    load_pipeline(path, check_io=False)  # without I/O checks the glob is not expanded


@pytest.mark.skipif(not os.path.isdir("/proc/sys"), reason="needs Linux's /proc/sys")
def test_unwritable_local_store(tmp_path: Path, inputs: str) -> None:
    # /proc/sys refuses writes even to root (the kernel's sysctl permission check; read-only in containers)
    path = write(tmp_path, config(tmp_path, inputs, [], store="/proc/sys/tamis-store/runs"))
    message = only(path, check_io=True)
    assert message.startswith("store:")
    assert "not writable" in message and "(checked /proc/sys)" in message


def test_store_under_a_regular_file_is_reported(tmp_path: Path, inputs: str) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = write(tmp_path, config(tmp_path, inputs, [], store=str(blocker / "runs")))
    message = only(path, check_io=True)
    assert message.startswith("store:") and str(blocker) in message


def test_unreachable_s3_store_fails_fast(tmp_path: Path, inputs: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    path = write(tmp_path, config(tmp_path, inputs, [], store="s3://no-such-bucket-x/runs",
                                  store_options={"endpoint_url": "http://127.0.0.1:9"}))
    outcome: dict[str, BaseException] = {}

    def validate() -> None:
        try:
            load_pipeline(path, check_io=True)
        except BaseException as err:  # handed to the test thread below
            outcome["error"] = err

    # A daemon thread, so a slow check cannot hold the test session past the deadline.
    worker = threading.Thread(target=validate, daemon=True)
    worker.start()
    worker.join(timeout=3.0)
    assert not worker.is_alive(), "validating an unreachable S3 store took more than 3 s"
    err = outcome.get("error")
    assert isinstance(err, SpecError), err
    assert len(err.problems) == 1
    assert err.problems[0].startswith("store:")
    assert "s3://no-such-bucket-x" in err.problems[0]


# --- several problems at once -----------------------------------------------------------------


def test_several_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, config(tmp_path, str(tmp_path / "nothing" / "*.jsonl"), [
        {"op": "exact_dedup", "config": {"scope": "everything"}},
        {"op": "no_such_op"},
        {"op": "filter", "config": {"expr": "x >", "colour": "red"}},
    ]))
    found = problems(path, check_io=True)
    assert [p.split(":", 1)[0] for p in found] == [
        "stages[0].config.scope", "stages[1].op", "stages[2].config.expr",
        "stages[2].config.colour", "input.paths"]


# --- parquet input ----------------------------------------------------------------------------


@pytest.fixture
def parquet_inputs(tmp_path: Path) -> str:
    data = tmp_path / "pq"
    data.mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["hello"], "lang": ["en"]}), data / "p.parquet")
    return str(data / "*.parquet")


def test_parquet_passthrough_columns_are_available(tmp_path: Path, parquet_inputs: str) -> None:
    raw = config(tmp_path, parquet_inputs, [{"op": "filter", "config": {"expr": "lang == 'en'"}}])
    raw["input"]["format"] = "parquet"
    path = write(tmp_path, raw)
    load_pipeline(path, check_io=True)
    raw["stages"][0]["config"]["expr"] = "country == 'fr'"
    message = only(write(tmp_path, raw), check_io=True)
    assert message.startswith("stages[0]:") and "'country'" in message and "lang" in message


def test_parquet_passthrough_columns_without_io_checks(tmp_path: Path, parquet_inputs: str) -> None:
    raw = config(tmp_path, parquet_inputs, [{"op": "filter", "config": {"expr": "lang == 'en'"}}])
    raw["input"]["format"] = "parquet"
    load_pipeline(write(tmp_path, raw), check_io=False)


# --- overrides --------------------------------------------------------------------------------


def test_apply_overrides_sets_list_items_and_parses_yaml_values() -> None:
    raw = {"stages": [{"op": "exact_dedup", "config": {"scope": "source"}}], "execution": {}}
    out = apply_overrides(raw, ["stages.0.config.scope=global", "execution.batch_rows=64",
                                "input.paths=[a.jsonl, b.jsonl]", "stages.0.name=dedup"])
    assert out["stages"][0] == {"op": "exact_dedup", "config": {"scope": "global"}, "name": "dedup"}
    assert out["execution"]["batch_rows"] == 64
    assert out["input"] == {"paths": ["a.jsonl", "b.jsonl"]}


def test_apply_overrides_creates_nested_keys() -> None:
    out = apply_overrides({"stages": [{"op": "filter"}]},
                          ["stages.0.config.rules.x=1", "a.b.c=text with = sign"])
    assert out["stages"][0]["config"] == {"rules": {"x": 1}}
    assert out["a"] == {"b": {"c": "text with = sign"}}


def test_apply_overrides_replaces_a_whole_list_item() -> None:
    out = apply_overrides({"stages": [{"op": "a"}, {"op": "b"}]}, ["stages.1={op: c}"])
    assert out["stages"] == [{"op": "a"}, {"op": "c"}]


@pytest.mark.parametrize(("override", "fragment"), [
    ("stages.5.config.scope=global", "'5' is not an index of a list of 1"),
    ("stages.first.op=x", "'first' is not an index of a list of 1"),
    ("stages.-1.op=x", "'-1' is not an index of a list of 1"),
    ("name.sub=x", "cannot descend into name"),
    ("stages.0.config.scope", "expected KEY.PATH=VALUE"),
    ("=global", "expected KEY.PATH=VALUE"),
])
def test_apply_overrides_errors(override: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        apply_overrides({"name": "t", "stages": [{"op": "exact_dedup"}]}, [override])
    assert info.value.problems and fragment in info.value.problems[0]
    assert "--set" in str(info.value)


def test_overrides_apply_before_validation(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "exact_dedup"}]))
    pipeline = load_pipeline(path, ["stages.0.config.scope=global", "execution.batch_rows=8"],
                             check_io=False)
    assert pipeline.stages[0].config.scope == "global"
    assert pipeline.spec.execution.batch_rows == 8
    message = only(path, overrides=["stages.0.config.scope=everything"])
    assert message.startswith("stages[0].config.scope:") and "'everything'" in message
    with pytest.raises(SpecError, match="not an index"):
        load_pipeline(path, ["stages.3.config.scope=global"], check_io=False)


def test_reserved_stage_names_are_refused(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "heuristics", "name": "read"}]))
    assert "stages[0].name" in only(path) and "reserved" in only(path)


def test_recorded_config_has_no_credentials(tmp_path: Path, inputs: str) -> None:
    from jobs.spec import redacted_config

    raw = config(tmp_path, inputs, [{"op": "heuristics"}],
                 store_options={"access_key_id": "AKIA-SECRET", "secret_access_key": "s3cr3t", "region": "eu-west-1"})
    spec = load_pipeline(write(tmp_path, raw), check_io=False).spec
    recorded = redacted_config(spec)
    assert "AKIA-SECRET" not in str(recorded) and "s3cr3t" not in str(recorded)
    assert recorded["store_options"]["region"] == "eu-west-1"
    assert spec.store_options.secret_access_key == "s3cr3t"  # the run itself still has them


def test_output_split_by_must_be_a_column_a_stage_writes(tmp_path: Path, inputs: str) -> None:
    path = write(tmp_path, config(tmp_path, inputs, [{"op": "heuristics"}], output={"split_by": "mix_phase"}))
    message = only(path)
    assert message.startswith("output.split_by: no stage writes column 'mix_phase'")
    assert "quality_word_count" in message
    ok = write(tmp_path, config(tmp_path, inputs, [{"op": "heuristics"}], output={"split_by": "source"}), "ok.yaml")
    assert load_pipeline(ok, check_io=False).spec.output.split_by == "source"
