"""YAML -> validated pipeline, before any Ray is started.

:func:`load_pipeline` reads a config, applies ``--set`` overrides, validates every field with
pydantic, expands composites into primitive stages, and checks that each stage's columns
are written by an earlier one. Every problem found is reported at once, each naming its
YAML path (``stages[2].config.threshold``), what was given and what is allowed.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from operators import registry
from operators.base import CORE_COLUMNS, DROP_REASON, Composite, Operator, OperatorConfig
from operators.config_files import uri_reader
from operators.config_paths import project_config
from operators.io.records import METADATA, FieldMapping
from jobs.models import read_config_uri
from jobs.store import InputFile, S3Options, Store, StoreError, filesystem_for, is_s3, resolve_inputs


class SpecError(ValueError):
    """One or more problems in a pipeline config; ``problems`` lists them."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SHARED_PATHS_HINT = ("use s3:// URIs, or set store_options.shared_filesystem: true if every node mounts them "
                     "at the same path")
"""What to do about local paths where the work runs on other machines."""

RUN_ID = re.compile(r"[A-Za-z0-9_.\-]+")
"""What a run id may hold: it names directories and Ray actors."""


class StoreOptionsSpec(_Strict):
    endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. http://127.0.0.1:9000 (else AWS env).")
    region: str | None = Field(None, description="S3 region (else AWS_REGION / AWS_DEFAULT_REGION).")
    access_key_id: str | None = Field(None, description="Prefer the AWS environment over secrets in YAML.")
    secret_access_key: str | None = Field(None, description="Prefer the AWS environment over secrets in YAML.")
    shared_filesystem: bool = Field(False, description="Local paths (store, input, output) are on a filesystem "
                                    "every node of the cluster mounts at the same path (else a run on a "
                                    "cluster of several nodes refuses them).")


class SampleSpec(_Strict):
    fraction: float = Field(gt=0, le=1, description="Share of the documents to read, chosen by id hash "
                            "(the same documents every time, spread over every input file).")
    seed: int = Field(0, description="Another seed draws another sample of the same size.")


class IncrementalSpec(_Strict):
    state: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Record of consumed input "
                       "files in the store (inputs/<state>/): a run reads only files that are new or changed since "
                       "the runs recorded there, and records them when it succeeds.")
    compact_segments: int = Field(16, ge=2, description="Past this many segments (one per run), the record is "
                                  "rewritten as one file.")


class InputSpec(_Strict):
    paths: list[str] = Field(min_length=1, description="Local or s3:// globs of input files.")
    format: Literal["jsonl", "parquet"] = Field("jsonl", description="jsonl (plain or .gz) or parquet.")
    text_field: str = Field("text", description="Field holding the document text.")
    id_field: str | None = Field("id", description="Field holding a stable id; derived when absent.")
    source_field: str | None = Field("source", description="Field naming the document's source.")
    source: str | None = Field(None, description="One source name for the whole input (overrides source_field).")
    max_text_bytes: int = Field(1_000_000, gt=0, description="Texts larger than this go to rejected/.")
    on_corrupt_file: Literal["skip", "fail"] = Field(
        "skip", description="An input file that cannot be read to its end (a compressed file cut short or "
        "damaged, a Parquet file without its footer or with a damaged page): skip keeps its records before the "
        "break and records the file in rejected/ as read:corrupt_file; fail stops the run with an error naming "
        "the file and the line or row where it broke.")
    sample: SampleSpec | None = Field(None, description="Read only a deterministic sample of the documents "
                                      "(`tamis run --sample FRACTION` sets it and names the run apart); "
                                      "rejected input rows are sampled alike.")
    incremental: IncrementalSpec | None = Field(None, description="Nightly runs: read only the input files no "
                                                "earlier run recorded in this state (new or changed ones); "
                                                "docs/operations.md, nightly runs.")
    duplicate_ids: Literal["quarantine", "allow"] = Field(
        "quarantine", description="With a stage that joins documents by id (minhash_dedup, semantic_dedup): "
        "quarantine: of documents sharing an id (within a file or across files), keep the first in input order and "
        "send the others to rejected/ as read:duplicate_id; allow: skip the check (one shuffle of the ids) when the "
        "ids are known to be unique.")

    def field_mapping(self) -> FieldMapping:
        return FieldMapping(text_field=self.text_field, id_field=self.id_field,
                            source_field=self.source_field, source=self.source,
                            max_text_bytes=self.max_text_bytes)


class ResourcesSpec(_Strict):
    num_cpus: float | None = Field(None, ge=0, description="CPUs per task or actor (operator hint otherwise).")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per actor.")
    memory_mb: int | None = Field(None, gt=0, description="Memory to reserve per task or actor.")
    concurrency: int | None = Field(None, gt=0, description="Most tasks or actors at once.")


class StageSpec(_Strict):
    op: str = Field(description="Registered operator name (see `tamis operators`).")
    name: str | None = Field(None, pattern=r"^[a-z0-9_]+$", description="Stage name; defaults to op.")
    config: dict[str, Any] = Field(default_factory=dict, description="The operator's config.")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)


class OutputSpec(_Strict):
    format: Literal["parquet", "jsonl"] = Field("parquet", description="Format of the curated shards.")
    path: str | None = Field(None, description="Where to write; default <store>/runs/<run-id>/output.")
    target_shard_mb: float = Field(256, gt=0, description="Approximate size of each output shard, in MiB.")
    split_by: str | list[str] | None = Field(None, description="Columns of the last stage: one folder "
                                             "<column>=<value>/ of shards per value, nested in the order given "
                                             "(e.g. mix_phase, then source), listed in the manifest.")
    weight_column: str | None = Field(None, description="A numeric column (e.g. mix_tokens) summed per output file "
                                      "and split; with split_by, each folder above the last split gets a "
                                      "_BLEND.txt of '<weight> <path>' pairs (Megatron-LM's --data-path form).")

    @property
    def target_shard_bytes(self) -> int:
        return max(1, int(self.target_shard_mb * 2**20))

    @property
    def split_columns(self) -> list[str]:
        """``split_by`` as a list (empty without a split)."""
        return [self.split_by] if isinstance(self.split_by, str) else list(self.split_by or [])


class ExecutionSpec(_Strict):
    wave_mb: float = Field(1024, gt=0, description="Input MB per wave of the read stage (and of a map stage after "
                           "a group or fit stage); the map stages chained after it follow its waves. A crash "
                           "costs one wave.")
    batch_rows: int = Field(1024, gt=0, description="Rows per batch handed to an operator.")
    part_rows: int = Field(100_000, gt=0, description="Input rows per read-stage checkpoint file (rounded "
                           "up to a whole batch for Parquet input).")
    group_partition_mb: int = Field(256, gt=0, description="Target size of one group-stage partition.")
    chain_maps: bool = Field(True, description="Run the read stage and the map stages right after it (and any "
                             "run of consecutive map stages) as one streaming job over all their waves (actors such as "
                             "a GPU model start once), consecutive CPU stages handing each batch through all of them "
                             "in memory, each stage still checkpointed and committed per wave; false runs them one "
                             "after another.")
    column_files: bool = Field(True, description="A map stage that keeps its input's rows (the operator's "
                               "keeps_rows) stores only the columns it writes, joined to its input file when read; "
                               "one that marks rows dropped stores its kept rows' numbers (rejected rows whole); "
                               "false: every map stage stores whole documents.")
    checkpoint_compression: Literal["lz4", "zstd", "snappy", "none"] = Field(
        "lz4", description="Parquet codec of checkpoint files. lz4 writes and reads fastest; zstd makes "
        "smaller files and takes more time (docs/configuration.md has the figures). Final outputs are always "
        "zstd.")
    lock_ttl_s: float = Field(120.0, gt=0, description="A run lock whose heartbeat is older is stale.")


DEFAULT_STORE = "./tamis-store"
"""The store of a config that names none, and of `tamis status` and the other store readers."""


class PipelineSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="Pipeline name; the default run id.")
    plugins: list[str] = Field(default_factory=list,
                               description="Python modules imported before planning; they register custom operators.")
    store: str = Field(DEFAULT_STORE, description="Local directory or s3://bucket/prefix for checkpoints.")
    store_options: StoreOptionsSpec = Field(default_factory=StoreOptionsSpec)
    input: InputSpec
    stages: list[StageSpec] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    def s3_options(self) -> S3Options:
        return S3Options(**self.store_options.model_dump(exclude={"shared_filesystem"}))

    def unshared_local_paths(self) -> list[str]:
        """The store, input and output locations that are local paths, not S3, unless
        ``store_options.shared_filesystem`` says every node mounts them; each as 'what path'."""
        if self.store_options.shared_filesystem:
            return []
        paths = [("store", self.store), *(("input", p) for p in self.input.paths),
                 *((("output", self.output.path),) if self.output.path else ())]
        return [f"{what} {path}" for what, path in paths if not is_s3(path)]

    def make_store(self) -> Store:
        return Store(self.store, self.s3_options())


def redacted_config(spec: PipelineSpec) -> dict[str, Any]:
    """The config as recorded in run.json and manifests: credentials replaced by a marker."""
    config = spec.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key"):
        if config["store_options"].get(key):
            config["store_options"][key] = "<redacted>"
    return config


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


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _problems(err: ValidationError, prefix: str = "", model: type[OperatorConfig] | None = None) -> list[str]:
    """Each error as '<YAML path>: <what> (given: ...)'; in an operator's ``model``, an
    unknown key lists the parameters allowed."""
    problems = []
    for e in err.errors():
        loc, given = _loc(e["loc"]), e.get("input")
        where = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        if model is not None and e["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown parameter (allowed: {', '.join(model.model_fields) or 'none'})")
        else:
            shown = "a mapping" if isinstance(given, dict) and model is None else repr(given)
            problems.append(f"{where}: {e['msg']} (given: {shown})")
    return problems


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
            problems.extend(_problems(err, f"{where}.config", cls.Config))
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

        from jobs.store import filesystem_for

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
        raise SpecError(path, _problems(err)) from None
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
