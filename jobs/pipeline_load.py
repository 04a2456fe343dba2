"""YAML -> validated pipeline, before any Ray is started.

:func:`load_pipeline` reads a config, applies ``--set`` overrides, validates every field with
pydantic (jobs/spec.py's models), expands composites into primitive stages
(:func:`plan_stages`), and checks that each stage's columns are written by an earlier one.
Every problem found is reported at once, each naming its YAML path
(``stages[2].config.threshold``), what was given and what is allowed.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from operators import registry
from operators.base import CORE_COLUMNS, DROP_REASON, Composite, Operator, OperatorConfig
from operators.config_files import uri_reader
from operators.config_paths import project_config
from operators.io.records import METADATA
from jobs.models import read_config_uri
from jobs.spec import PipelineSpec, ResourcesSpec, SpecError, validation_problems
from jobs.store import InputFile, S3Options, StoreError, filesystem_for, is_s3, resolve_inputs


@dataclass(frozen=True)
class PlannedStage:
    """One primitive stage as the scheduler runs it."""

    name: str
    operator: type[Operator[Any]]
    config: OperatorConfig
    resources: ResourcesSpec
    yaml_index: int  # which entry of `stages` it came from (-1: a stage of the input itself)
    # the config fields the stage's fingerprint covers (a composite part's ``fields``); None: all
    config_fields: tuple[str, ...] | None = None

    def fingerprint_config(self) -> dict[str, Any]:
        """The config as the stage fingerprint sees it: the JSON dump, cut to ``config_fields``."""
        dump = self.config.model_dump(mode="json")
        return dump if self.config_fields is None else project_config(dump, self.config_fields)


@dataclass(frozen=True)
class Pipeline:
    spec: PipelineSpec
    stages: tuple[PlannedStage, ...]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.0.c=value`` overrides (value parsed as YAML) to the raw config."""
    for item in overrides:
        dotted, sep, value = item.partition("=")
        if not sep or not dotted:
            raise SpecError("--set", [f"{item!r}: expected KEY.PATH=VALUE, e.g. stages.1.config.x=1"])
        node: Any = raw
        keys = dotted.split(".")
        for n, key in enumerate(keys):
            last = n == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise SpecError("--set", [f"{dotted}: {key!r} is not an index of a list of {len(node)}"])
                if last:
                    node[int(key)] = yaml.safe_load(value)
                else:
                    node = node[int(key)]
            elif isinstance(node, dict):
                if last:
                    node[key] = yaml.safe_load(value)
                else:
                    node = node.setdefault(key, {})
            else:
                raise SpecError("--set", [f"{dotted}: cannot descend into {'.'.join(keys[:n])}"])
    return raw


RESERVED_STAGE_NAMES = ("read", "write", "unique_ids")


def import_plugins(spec: PipelineSpec) -> list[str]:
    """Import the spec's plugin modules; returns a problem per module that fails."""
    problems = []
    for i, module in enumerate(spec.plugins):
        try:
            importlib.import_module(module)
        except Exception as err:  # any import failure is the user's to fix; say which
            problems.append(f"plugins[{i}]: cannot import {module!r}: {type(err).__name__}: {err}")
    return problems


def _with_id_check(spec: PipelineSpec, stages: list[PlannedStage]) -> tuple[PlannedStage, ...]:
    """``stages`` with the two that quarantine repeated ids (operators/io/unique_ids.py), when
    a stage joins documents by id (``needs_unique_ids``) and repeated ids are not allowed.

    They go before the first stage that is not a map: up to there documents stay in the read's
    files, in input order, which is what "first occurrence" means (a group may reorder them),
    and the maps before (a signature, a hash) keep streaming from the read in one chain."""
    if spec.input.duplicate_ids == "allow" or not any(s.operator.needs_unique_ids for s in stages):
        return tuple(stages)
    first = next((n for n, s in enumerate(stages) if s.operator.kind != "map" or s.operator.needs_unique_ids))
    find, apply = registry.get("unique_ids.find"), registry.get("unique_ids.apply")
    check = (PlannedStage("unique_ids.find", find, find.Config(), ResourcesSpec(), -1),
             PlannedStage("unique_ids.apply", apply, apply.Config(), ResourcesSpec(), -1))
    return (*stages[:first], *check, *stages[first:])


def plan_stages(spec: PipelineSpec) -> tuple[tuple[PlannedStage, ...], list[str]]:
    """Import plugins, expand composites and validate operator configs."""
    planned: list[PlannedStage] = []
    problems: list[str] = import_plugins(spec)
    seen: dict[str, int] = {}
    for i, stage in enumerate(spec.stages):
        where = f"stages[{i}]"
        try:
            cls = registry.get(stage.op)
        except registry.UnknownOperatorError as err:
            problems.append(f"{where}.op: {err}")
            continue
        try:
            # a file the config names by URI (a mix's weights_file) is read through the store layer
            with uri_reader(lambda uri: read_config_uri(uri, spec.s3_options())):
                config = cls.Config(**stage.config)
        except ValidationError as err:
            problems.extend(validation_problems(err, f"{where}.config", cls.Config))
            continue
        base = stage.name or stage.op.replace(".", "_")
        if base in RESERVED_STAGE_NAMES:
            problems.append(f"{where}.name: {base!r} is reserved for the pipeline's own stages; "
                            f"give the stage another name")
            continue
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen[name] = i
        if isinstance(cls, type) and issubclass(cls, Composite):
            for part in cls.parts(config):
                # a part with no suffix is the stage the user named (a composite of one part)
                part_name = f"{name}.{part.suffix}" if part.suffix else name
                planned.append(PlannedStage(part_name, part.operator, part.config, stage.resources, i,
                                            part.fields))
        else:
            planned.append(PlannedStage(name, cls, config, stage.resources, i))
    return _with_id_check(spec, planned), problems


def input_columns(spec: PipelineSpec, files: list[InputFile] | None) -> set[str] | None:
    """Columns the read stage produces, or None when they cannot be known cheaply (Parquet
    input whose files were not listed, or whose first file's schema cannot be read)."""
    if spec.input.format == "jsonl":
        return set(CORE_COLUMNS) | {METADATA}
    if not files:
        return None
    try:
        import pyarrow.parquet as pq

        fs, path = filesystem_for(files[0].uri, spec.s3_options())
        names = set(pq.read_schema(path, filesystem=fs).names)
    except Exception:  # unknown schema: column checks for input fields are skipped
        return None
    mapped = {spec.input.text_field, spec.input.id_field, spec.input.source_field}
    return set(CORE_COLUMNS) | (names - mapped)


def column_problems(stages: tuple[PlannedStage, ...], available: set[str] | None,
                    split_by: list[tuple[str, str]] | None = None) -> list[str]:
    """A column read before any stage writes it, named with the YAML entry that reads it;
    an output column (``split_by``: (field, column) pairs) no stage writes."""
    if available is None:
        return []
    problems = []
    have = set(available)
    for stage in stages:
        for column in stage.operator.columns_read(stage.config):
            if column not in have:
                problems.append(
                    f"stages[{stage.yaml_index}]: {stage.name} reads column {column!r}, which no "
                    f"earlier stage writes (available: {', '.join(sorted(have))})")
        have |= set(stage.operator.columns_written(stage.config)) - {DROP_REASON}
    for field, column in split_by or []:
        if column not in have:
            problems.append(f"output.{field}: no stage writes column {column!r} (available: {', '.join(sorted(have))})")
    return problems


def load_pipeline(path: str, overrides: list[str] | None = None, *, check_io: bool = True) -> Pipeline:
    """Read, override and validate a pipeline; raise :class:`SpecError` listing every problem.

    ``path`` is a local file or an ``s3://`` URI (read with the standard AWS environment's
    credentials and endpoint, as a cluster job that keeps its configs in S3 would)."""
    try:
        raw = yaml.safe_load(_config_text(path))
    except FileNotFoundError:
        raise SpecError(path, ["file not found"]) from None
    except yaml.YAMLError as err:
        raise SpecError(path, [f"not valid YAML: {err}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(path, ["expected a mapping with name, input and stages at the top level"])
    raw = apply_overrides(raw, overrides or [])
    try:
        spec = PipelineSpec(**raw)
    except ValidationError as err:
        raise SpecError(path, validation_problems(err)) from None
    spec = _absolute_paths(spec)
    stages, problems = plan_stages(spec)
    files: list[InputFile] | None = None
    if check_io:
        io_problems, files = _io_problems(spec)
        problems += io_problems
    if not any(p.startswith("stages") or p.startswith("plugins") for p in problems):
        output_columns = [("split_by", c) for c in spec.output.split_columns]
        if spec.output.weight_column:
            output_columns.append(("weight_column", spec.output.weight_column))
        problems += column_problems(stages, input_columns(spec, files), output_columns)
    if problems:
        raise SpecError(path, problems)
    return Pipeline(spec, stages)


def _config_text(path: str) -> str:
    """The config file's text, local or on S3.

    Raises:
        FileNotFoundError: there is no such file (or S3 object).
        SpecError: the S3 object cannot be read (no access, no endpoint).
    """
    if not is_s3(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    fs, where = filesystem_for(path, S3Options())
    try:
        with fs.open_input_stream(where) as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(path, [f"cannot be read: {err}"]) from None


def _absolute_paths(spec: PipelineSpec) -> PipelineSpec:
    """Resolve local paths against the working directory once, before workers see them."""
    def fix(p: str) -> str:
        return p if is_s3(p) else os.path.abspath(os.path.expanduser(p))

    output = spec.output.model_copy(update={"path": fix(spec.output.path)}) if spec.output.path else spec.output
    return spec.model_copy(update={
        "store": fix(spec.store),
        "input": spec.input.model_copy(update={"paths": [fix(p) for p in spec.input.paths]}),
        "output": output,
    })


def _io_problems(spec: PipelineSpec) -> tuple[list[str], list[InputFile]]:
    """Store and input problems, and the input files (listed once: on S3 that is costly)."""
    problems = []
    files: list[InputFile] = []
    try:
        spec.make_store().check()
    except StoreError as err:
        problems.append(f"store: {err}")
    try:
        files = resolve_inputs(spec.input.paths, spec.s3_options(), spec.input.format)
        if not files:
            problems.append(f"input.paths: no file matches {spec.input.paths}")
    except Exception as err:  # unreachable bucket, bad credentials, ...
        problems.append(f"input.paths: cannot list {spec.input.paths}: {err}")
    return problems, files
