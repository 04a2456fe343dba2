"""The pipeline YAML's schema: pydantic models of every section, validated field by field.

:class:`PipelineSpec` is the whole config; :func:`validation_problems` words pydantic's errors
as ``<YAML path>: <what> (given: ...)``. Loading a file, ``--set`` overrides, composite
expansion and the column checks are jobs/pipeline_load.py's.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from operators.base import OperatorConfig
from operators.io.records import FieldMapping
from jobs.store import S3Options, Store, is_s3


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


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validation_problems(err: ValidationError, prefix: str = "", model: type[OperatorConfig] | None = None) -> list[str]:
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
