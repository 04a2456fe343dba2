"""Operator kinds and their contract.

Operators are pure transforms over ``pyarrow.Table``: no Ray, no object storage, no
environment reads. jobs/ decides how and where they run. Three kinds exist:

* :class:`MapOperator` - ``__call__(batch) -> batch``, row-local work.
* :class:`GroupOperator` - declares ``key``; ``__call__(table)`` receives complete groups
  (usually many per call, so vectorize over them).
* :class:`FitOperator` - ``fit(batches) -> artifact`` runs once over a stage's whole input;
  the documents pass through unchanged and the artifact is handed to the operators after it
  that declare ``uses_artifact``.

A user-facing name may also be a :class:`Composite`: a short explicit list of primitives, so
the scheduler can checkpoint between them.

Rejection protocol: an operator that removes rows returns them anyway with a non-null
string in the :data:`DROP_REASON` column (``"<family>:<reason>"``); jobs/ routes those rows
to the stage's ``rejected/`` output and counts them per reason. Kept rows carry null.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from operators.config_paths import config_path_problem

DROP_REASON = "drop_reason"
"""Column naming why a row was removed; null for kept rows."""

CORE_COLUMNS = ("id", "text", "source")
"""Columns every document table has from the read stage on."""

FILE_COLUMN = "_tamis_file"
"""Set by jobs/ on rows a group operator projects: the checkpoint file a document lives in.
An artifact that keeps it is split per file, so a later map stage reads only its own file's
slice (a co-partitioned lookup: no shuffle of documents, no broadcast)."""

TAKE_COLUMN = "_tamis_take"
"""Written by a map operator that ``repeats_rows``: the index, in the batch it was given, of
the input row each output row is a copy of (non-decreasing)."""


@dataclass(frozen=True)
class CrossRunState:
    """State an operator keeps across runs in the store (jobs/state.py versions it).

    Example: ``minhash_dedup``'s index of the documents earlier runs kept. Each successful
    run that reads it folds its output into a new version (``fold_state``); a run pins one
    version, so its result does not depend on runs that finish while it works.
    """

    family: str  # store folder and run.json key, e.g. "indexes"
    label: str  # what one is called in messages and stage info, e.g. "index"
    name: str  # which one: <family>/<name>/ in the store
    compat: dict[str, Any]  # settings every version must share; a state built otherwise is refused
    columns: tuple[str, ...]  # the output columns folding reads
    update: bool = True  # fold this run's output into a new version when the run succeeds
    replace: bool = False  # each version one table folded from the last (else a segment appended)
    compact_segments: int | None = None  # append form: past this many segments, one file holds them all


class OperatorConfig(BaseModel):
    """Base of every operator's config: frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


ConfigT = TypeVar("ConfigT", bound=OperatorConfig)


@dataclass(frozen=True)
class ResourceHint:
    """What one instance of an operator needs; jobs/ may override it from the YAML."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int | None = None
    stateful: bool = False  # heavy state in __init__: run in an actor pool, not tasks
    # GPUs per instance when the cluster has any (a CPU-only cluster runs it on CPUs); a YAML
    # `resources.num_gpus` overrides it, `num_gpus: 0` forcing CPUs
    gpus_when_available: float = 0.0


class Operator(Generic[ConfigT]):
    """Common declarations of every primitive operator.

    Subclasses set ``name`` (registry name), ``version`` (bump whenever the output for the
    same input changes: it is part of the stage fingerprint), ``Config``, ``reads`` and
    ``writes``. Where the columns depend on the config, override :meth:`columns_read` or
    :meth:`columns_written`.
    """

    kind: ClassVar[str] = "operator"
    name: ClassVar[str]
    version: ClassVar[int] = 1
    Config: ClassVar[type[OperatorConfig]] = OperatorConfig
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[ResourceHint] = ResourceHint()
    uses_artifact: ClassVar[bool] = False
    # True when the operator joins or groups documents by ``id`` and two documents with one
    # id would corrupt its result: jobs/ then quarantines repeated ids just before it
    # (operators/io/unique_ids.py) unless ``input.duplicate_ids: allow``.
    needs_unique_ids: ClassVar[bool] = False
    # With ``model_field``, that config field (a dotted path) names a model file (local path or
    # s3://); jobs/ reads it when the run starts (unless the field is null), has ``check_model``
    # vet it and hands it over as the artifact: the Parquet file's table, or, with
    # ``model_format = "bytes"``, one row of the file's ``name`` and ``data`` (any file).
    model_field: ClassVar[str | None] = None
    model_format: ClassVar[str] = "parquet"

    def __init__(self, config: ConfigT, artifact: pa.Table | None = None) -> None:
        # With ``uses_artifact``, ``artifact`` is the nearest upstream artifact (or, when it is
        # split per file, the slice for the file being processed); None when it has no rows.
        self.config = config
        self.artifact = artifact

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        """Columns this operator needs in its input for ``config``."""
        return cls.reads

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        """Columns this operator adds or replaces for ``config``."""
        return cls.writes

    @classmethod
    def describe(cls, config: OperatorConfig) -> dict[str, Any]:
        """Facts derived from the config worth recording in run.json and the manifest."""
        return {}

    @classmethod
    def cross_run_state(cls, config: OperatorConfig) -> "CrossRunState | None":
        """The state kept across runs that this operator reads for ``config``, or None.

        jobs/ pins one version per run and hands over its files: a map gets them as its
        (whole) artifact, a group gets their rows through :meth:`GroupOperator.state_project`.
        """
        return None

    @classmethod
    def fold_state(cls, config: OperatorConfig, previous: pa.Table | None,
                   documents: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """With :meth:`cross_run_state`: the tables of the next version, from a successful
        run's output ``documents`` (batches of the state's ``columns``). The first table fixes
        the schema and may be empty. Append form: the rows to add (``previous`` is None);
        replace form: the whole new state, built from ``previous`` (None for the first)."""
        raise NotImplementedError(f"{cls.__name__} declares cross-run state but does not fold it")

    @classmethod
    def check_model(cls, config: OperatorConfig, table: pa.Table) -> dict[str, Any]:
        """With ``model_field``: facts about the model ``table`` for run.json; raise ValueError
        when it is not a model this operator can use."""
        raise NotImplementedError(f"{cls.__name__} sets model_field but does not check its models")

    def metrics(self) -> dict[str, float]:
        """Counters since construction (summed over workers into the stage's commit)."""
        return {}


class MapOperator(Operator[ConfigT]):
    """Row-local transform: the output has the input's rows (some maybe marked dropped)."""

    kind = "map"
    keeps_rows: ClassVar[bool] = False
    """True when the output is always the input, row for row and in order, with only the
    columns of :meth:`columns_written` added, replaced or dropped: then its checkpoint holds
    only those columns (jobs/parts.py, ``column_part``), checked on every batch. When
    ``drop_reason`` is among them, the kept rows are stored as their row numbers in the
    input file (``row_part``), the rejected ones whole."""
    repeats_rows: ClassVar[bool] = False
    """True when each output row is a copy of an input row (0, 1 or more copies each, in
    input order) with only the columns of :meth:`columns_written` added, and the output says
    which in :data:`TAKE_COLUMN`. The operator is then given only the columns it reads, and
    its kept rows are stored as row numbers in its input file, repeats included
    (``taken_part``): no copy of their text. Rejected rows are stored whole."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError


class GroupOperator(Operator[ConfigT]):
    """Transform over complete groups of rows sharing ``key`` (see :meth:`group_key`).

    By default the documents themselves are grouped and the output replaces them. With
    ``emits = "artifact"``, :meth:`project` turns each document batch into the rows to group
    (e.g. one row per LSH band), the output becomes the stage's artifact, and the documents
    pass through unchanged. With ``bypass_null_keys``, rows whose key is null are handed to
    the operator where they are read, as groups of one, without being shuffled.
    """

    kind = "group"
    emits: ClassVar[str] = "documents"
    bypass_null_keys: ClassVar[bool] = False
    artifact_by_file: ClassVar[bool] = False
    """With ``emits = "artifact"``: the artifact has :data:`FILE_COLUMN` and is stored split
    per document file (one slice per file and partition), for a later map stage to read
    only its file's rows."""
    rows_sorted: ClassVar[bool] = True
    """False when the operator orders the rows of a call itself: the shuffle then hands it
    each partition in the order read (deterministic: fragments in file order), without the
    sort by key and id that moves every column (``minhash_dedup.keep``'s shingle sets)."""
    lone_rows_matter: ClassVar[bool] = True
    """False when a group of one row adds nothing to the output (an LSH bucket of one
    document has no edge): the shuffle then drops such rows before the full sort."""

    def group_key(self) -> tuple[str, ...]:
        """Columns whose values define a group; every group arrives whole in one call."""
        raise NotImplementedError

    def project(self, batch: pa.Table) -> pa.Table:
        """The rows to group for a batch of documents (identity unless overridden).

        With ``emits = "artifact"`` the batch holds only :meth:`columns_read`'s columns.
        """
        return batch

    def state_project(self, rows: pa.Table) -> pa.Table:
        """With :meth:`cross_run_state`: the state's rows in the form :meth:`project` gives
        documents, so they are grouped together with this run's."""
        raise NotImplementedError

    def __call__(self, table: pa.Table) -> pa.Table:
        raise NotImplementedError


@dataclass(frozen=True)
class Rounds:
    """How a fit runs distributed when its input outgrows one worker: rounds of group steps.

    ``steps`` run in order over the previous round's artifact, repeatedly, until the first
    step reports ``converged_metric == 0`` (its input was already the fixed point, so its
    output is too); then ``finish`` runs once, in order. Each step is a
    :class:`GroupOperator` with ``emits = "artifact"``; a finish step grouped by
    :data:`FILE_COLUMN` alone writes the artifact split per document file, as a fit would.
    jobs/ commits every round, so a killed run resumes at the first uncommitted one.
    """

    steps: tuple[type["GroupOperator[Any]"], ...]
    finish: tuple[type["GroupOperator[Any]"], ...]
    converged_metric: str
    max_rounds: int = 200


class FitOperator(Operator[ConfigT]):
    """Global computation over the whole input, producing an artifact table.

    ``fit_on = "artifact"`` fits on the nearest upstream artifact instead of the documents.
    With ``rounds`` set, :meth:`use_rounds` may send a large input down the distributed path
    instead of :meth:`fit`; both must produce the same artifact.
    """

    kind = "fit"
    fit_on: ClassVar[str] = "documents"
    rounds: ClassVar[Rounds | None] = None
    # A fit whose library runs threads (FAISS): unless the YAML sets ``resources.num_cpus``,
    # its task reserves every CPU of one node and :attr:`threads` is set to that count before
    # :meth:`fit` (a Ray task would otherwise run it on one thread).
    multithreaded: ClassVar[bool] = False
    threads: int = 1

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        raise NotImplementedError

    def use_rounds(self, input_rows: int) -> bool:
        """Whether an input of ``input_rows`` rows goes down the distributed path."""
        return False


@dataclass(frozen=True)
class Part:
    """One primitive of a composite: a stage-name suffix, the operator and its config.

    ``fields`` names the config fields the part reads, as dotted paths into ``config``
    (``"keep"``, ``"lsh.seed"``); None means the whole config. Only these enter the part's
    stage fingerprint, so a change to any other field reuses the part's checkpoint: the
    list must hold everything that can change the part's output for the same input, read
    directly or indirectly (through a config method such as ``banding()``, through
    :meth:`Operator.columns_read`, :meth:`Operator.columns_written` or
    :meth:`FitOperator.use_rounds`, or by the steps of its :class:`Rounds`). A field that
    only chooses how the same output is computed may be left out. The list may depend on
    the config ``parts`` is given (banding's inputs only when the bands are not set): two
    lists name different keys, so their fingerprints differ; each list must then be
    complete for every config that yields it.
    """

    suffix: str
    operator: type[Operator[Any]]
    config: OperatorConfig
    fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for path in self.fields or ():
            if (why := config_path_problem(type(self.config), path)) is not None:
                # the composite's code is wrong, not the YAML: fail as a bug
                raise TypeError(f"part {self.suffix!r} ({self.operator.__name__}) declares config field "
                                f"{path!r}, which does not exist: {why}")


class Composite(Generic[ConfigT]):
    """A user-facing operator made of primitives that hand over through committed outputs."""

    kind: ClassVar[str] = "composite"
    name: ClassVar[str]
    Config: ClassVar[type[OperatorConfig]] = OperatorConfig

    @classmethod
    def parts(cls, config: ConfigT) -> Sequence[Part]:
        raise NotImplementedError


def with_drop_reason(table: pa.Table, reasons: pa.Array) -> pa.Table:
    """Return ``table`` with ``reasons`` as its drop-reason column, keeping earlier reasons.

    A row already dropped upstream keeps its first reason, so a document is counted once,
    by the first rule that removed it.
    """
    import pyarrow.compute as pc

    if DROP_REASON in table.column_names:
        reasons = pc.coalesce(table[DROP_REASON].cast(pa.string()), reasons.cast(pa.string()))
        return table.set_column(table.column_names.index(DROP_REASON), DROP_REASON, reasons)
    return table.append_column(DROP_REASON, reasons.cast(pa.string()))


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    """Add ``name`` or replace it in place, so re-running an operator is idempotent."""
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)
