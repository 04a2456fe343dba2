"""Model files named by URI in a stage's config, read for the operator that scores with them.

An operator declares ``model_field`` (the config field holding a local path or
``s3://bucket/key``) and a classmethod ``check_model(config, table) -> dict`` that raises
``ValueError`` when the table is not a model it can use. When a run starts, the scheduler
reads each such file once through :mod:`jobs.store` (:func:`stage_model`), has the operator
check it, and copies its bytes into the run's store at ``models/<sha256>.parquet``: the map
stage then gets that copy as its (whole) artifact, like any upstream artifact, and the run's
store keeps the exact model every scored document saw. The file's SHA-256 replaces the URI
in the stage fingerprint: retraining re-runs scoring, moving the file does not.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.store import S3Options, Store, is_s3


class ModelFileError(ValueError):
    """A model URI that cannot be read or is not a model its stage can use; names the URI."""


@dataclass(frozen=True)
class StagedModel:
    """A model file as a run uses it."""

    uri: str  # where the config named it
    key: str  # its copy in the run's store
    sha256: str  # of the file's bytes
    info: dict[str, Any]  # what the operator's check_model reported, for run.json


def _location(uri: str, options: S3Options, what: str = "model") -> tuple[Store, str]:
    """A store for the URI's directory (bucket/prefix on S3) and the file's key in it."""
    if not is_s3(uri) and not uri.startswith("/"):
        raise ModelFileError(f"{what} {uri!r}: give an absolute local path or an s3:// URI (workers do not "
                             "share the driver's working directory)")
    parent, name = posixpath.split(uri.rstrip("/"))
    if not name or parent in ("s3:", "s3:/"):
        raise ModelFileError(f"{what} {uri!r}: expected the URI of a file, e.g. s3://bucket/models/m.parquet")
    return Store(parent, options), name


def read_bytes(uri: str, options: S3Options, what: str = "model") -> bytes:
    """The whole object at ``uri`` (local path or s3://); ``what`` names it in errors.

    Raises:
        ModelFileError: missing or unreadable, naming the URI.
    """
    store, key = _location(uri, options, what)
    try:
        with store.fs.open_input_file(store.fs_path(key)) as f:
            return f.read()
    except FileNotFoundError:
        hint = f"; train one with `tamis train-classifier ... --out {uri}`" if what == "model" else ""
        raise ModelFileError(f"{what} {uri} not found{hint}") from None
    except OSError as err:  # permissions, an unreachable endpoint, a directory
        raise ModelFileError(f"{what} {uri} cannot be read: {err}") from err


def write_bytes(uri: str, data: bytes, options: S3Options) -> None:
    """Write ``data`` at ``uri`` (local path or s3://), replacing what is there."""
    store, key = _location(uri, options)
    with store.open_output(key) as sink:
        sink.write(data)


def model_uri(operator: type, config: Any) -> str | None:
    """The model file the stage's config names (``model_field``, a dotted path), or None."""
    value: Any = config
    for part in operator.model_field.split("."):
        value = getattr(value, part, None)
    return value


def stage_model(operator: type, config: Any, store: Store, options: S3Options) -> StagedModel:
    """Read the model ``config`` names, check it with the operator, copy it into ``store``
    (a Parquet model as it is; with ``model_format = "bytes"``, any file as a one-row table
    of its ``name`` and ``data``).

    Raises:
        ModelFileError: The file is missing, unreadable, not Parquet, or not a model the
            operator accepts; the message names the URI and what was expected.
    """
    uri = model_uri(operator, config)
    data = read_bytes(uri, options)
    if operator.model_format == "bytes":
        table = pa.table({"name": [posixpath.basename(uri)], "data": pa.array([data], pa.large_binary())})
    else:
        try:
            table = pq.read_table(pa.BufferReader(data))
        except pa.ArrowException as err:
            raise ModelFileError(f"model {uri} is not a Parquet file ({err}); expected a model written by "
                                 "`tamis train-classifier`") from None
    try:
        info = operator.check_model(config, table)
    except ValueError as err:
        raise ModelFileError(f"model {uri}: {err}") from None
    sha = hashlib.sha256(data).hexdigest()
    key = f"models/{sha}.parquet"
    if not store.exists(key):  # content-addressed: an existing copy is the same bytes
        with store.open_output(key) as sink:
            if operator.model_format == "bytes":
                pq.write_table(table, sink)
            else:
                sink.write(data)
    return StagedModel(uri, key, sha, {"model": uri, "model_sha256": sha, **info})


def read_config_uri(uri: str, options: S3Options) -> bytes:
    """A file a config names by URI, for operators/config_files.py (which expects OSError)."""
    try:
        return read_bytes(uri, options, what="file")
    except ModelFileError as err:
        raise OSError(str(err)) from None
