"""Object storage: one interface over a local directory and ``s3://bucket/prefix``.

Bulk data goes through ``pyarrow.fs`` (:attr:`Store.fs` plus :meth:`Store.fs_path`); small
JSON objects (commits, run state, locks) go through :meth:`read_json`, :meth:`write_json`
and :meth:`create_json`. ``create_json`` is the conditional put every commit relies on: a
local hard link (atomic, fails if the name exists) or S3 ``PutObject`` with
``IfNoneMatch="*"``. boto3 runs in standard retry mode and pyarrow's S3 filesystem with the
standard retry strategy, so transient S3 errors are retried with backoff. A conditional put
retried after its answer was lost meets its own first attempt (412): it reads the object
back and counts as done when the bytes are its own, so a lost answer is never taken for
another writer (tests/integration/test_s3_faults.py).

A Store pickles as its URI and options only; clients are rebuilt lazily in each process.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs


class StoreError(RuntimeError):
    """The store cannot be reached or used; the message says which and why."""


@dataclass(frozen=True)
class S3Options:
    """Connection settings for S3; unset fields fall back to the standard AWS environment."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def resolved(self) -> "S3Options":
        env = os.environ.get
        return S3Options(
            endpoint_url=self.endpoint_url or env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL"),
            region=self.region or env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
            access_key_id=self.access_key_id or env("AWS_ACCESS_KEY_ID"),
            secret_access_key=self.secret_access_key or env("AWS_SECRET_ACCESS_KEY"),
            session_token=self.session_token or env("AWS_SESSION_TOKEN"),
        )


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key.strip("/")


def filesystem_for(uri: str, options: S3Options) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path to pass it for ``uri`` (local path or s3://)."""
    if not is_s3(uri):
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    opts = options.resolved()
    kwargs: dict[str, Any] = {
        "region": opts.region,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=10),
    }
    if opts.endpoint_url:
        # pyarrow ignores AWS_ENDPOINT_URL (apache/arrow#49643): pass it explicitly.
        scheme, _, host = opts.endpoint_url.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if opts.access_key_id:
        kwargs.update(access_key=opts.access_key_id, secret_key=opts.secret_access_key,
                      session_token=opts.session_token)
    return pafs.S3FileSystem(**kwargs), uri[len("s3://"):]


def s3_client(options: S3Options, **config: Any) -> Any:
    """A boto3 S3 client for ``options`` with a botocore ``Config(**config)``."""
    import boto3
    from botocore.config import Config

    opts = options.resolved()
    return boto3.client("s3", endpoint_url=opts.endpoint_url, region_name=opts.region,
                        aws_access_key_id=opts.access_key_id, aws_secret_access_key=opts.secret_access_key,
                        aws_session_token=opts.session_token, config=Config(**config))


@dataclass
class Store:
    """The run store rooted at ``uri``: keys are ``/``-separated paths below it."""

    uri: str
    options: S3Options = field(default_factory=S3Options)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.uri = self.uri.rstrip("/") if is_s3(self.uri) else os.path.abspath(self.uri)

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.uri, self.options, self._clients = state["uri"], state["options"], {}

    # -- addressing -------------------------------------------------------------------
    @property
    def s3(self) -> bool:
        return is_s3(self.uri)

    def url(self, key: str) -> str:
        """Full URI of ``key``, for messages and for readers outside the store."""
        return f"{self.uri}/{key}" if key else self.uri

    @property
    def fs(self) -> pafs.FileSystem:
        if "fs" not in self._clients:
            self._clients["fs"], _ = filesystem_for(self.uri, self.options)
        return self._clients["fs"]

    def fs_path(self, key: str) -> str:
        """Path of ``key`` in :attr:`fs`'s terms."""
        return self.url(key)[len("s3://"):] if self.s3 else os.path.join(self.uri, key)

    def open_output(self, key: str) -> Any:
        """A pyarrow output stream for ``key`` (parent directories made on a local disk)."""
        path = self.fs_path(key)
        if not self.s3:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.fs.open_output_stream(path)

    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, prefix = split_s3(self.uri)
        return bucket, posixpath.join(prefix, key) if prefix else key

    @property
    def _boto(self) -> Any:
        if "boto" not in self._clients:
            self._clients["boto"] = s3_client(self.options, retries={"mode": "standard", "max_attempts": 10})
        return self._clients["boto"]

    # -- small JSON objects -----------------------------------------------------------
    def read_json(self, key: str) -> dict[str, Any] | None:
        """The object at ``key``, or None when there is none."""
        if self.s3:
            bucket, k = self._bucket_key(key)
            try:
                body = self._boto.get_object(Bucket=bucket, Key=k)["Body"].read()
            except self._boto.exceptions.NoSuchKey:
                return None
            return json.loads(body)
        try:
            with open(os.path.join(self.uri, key), encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def write_json(self, key: str, obj: Any) -> None:
        """Write ``obj`` at ``key``, replacing what is there (atomically on a local disk)."""
        data = _dumps(obj)
        if self.s3:
            bucket, k = self._bucket_key(key)
            self._boto.put_object(Bucket=bucket, Key=k, Body=data, ContentType="application/json")
            return
        path = os.path.join(self.uri, key)
        tmp = self._local_tmp(path, data)
        os.replace(tmp, path)

    def create_json(self, key: str, obj: Any) -> bool:
        """Write ``obj`` at ``key`` only if nothing is there; False when something was."""
        data = _dumps(obj)
        if self.s3:
            bucket, k = self._bucket_key(key)
            try:
                self._boto.put_object(Bucket=bucket, Key=k, Body=data, IfNoneMatch="*",
                                      ContentType="application/json")
            except self._boto.exceptions.ClientError as err:
                code = err.response.get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    # a retried put whose first attempt landed (its reply lost) finds its own bytes
                    try:
                        return self._boto.get_object(Bucket=bucket, Key=k)["Body"].read() == data
                    except self._boto.exceptions.NoSuchKey:
                        return False
                raise
            return True
        path = os.path.join(self.uri, key)
        tmp = self._local_tmp(path, data)
        try:
            os.link(tmp, path)  # atomic and exclusive, with the content already complete
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    @staticmethod
    def _local_tmp(path: str, data: bytes) -> str:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return tmp

    # -- listing and deleting ---------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self.fs_path(key)).type != pafs.FileType.NotFound

    def list(self, prefix: str) -> list[str]:
        """Keys of the files below ``prefix``, sorted; empty when there is nothing."""
        base = self.fs_path(prefix)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            return []
        root = self.fs_path("").rstrip("/")
        return sorted(i.path[len(root) + 1:] for i in infos if i.type == pafs.FileType.File)

    def list_sizes(self, prefix: str) -> dict[str, int]:
        """Each file below ``prefix`` with its size in bytes (one listing, as :meth:`list`)."""
        base = self.fs_path(prefix)
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        except FileNotFoundError:
            return {}
        root = self.fs_path("").rstrip("/")
        return {i.path[len(root) + 1:]: i.size for i in infos if i.type == pafs.FileType.File}

    def delete_prefix(self, prefix: str) -> None:
        """Remove everything below ``prefix`` (nothing if it does not exist)."""
        path = self.fs_path(prefix)
        if self.fs.get_file_info(path).type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif self.exists(prefix):
            self.fs.delete_file(path)

    def check(self) -> None:
        """Raise :class:`StoreError` unless the store can be written."""
        if self.s3:
            bucket, _ = split_s3(self.uri)
            # its own client: fail in seconds, not after the run's patient retry policy
            probe_client = s3_client(self.options, retries={"mode": "standard", "max_attempts": 2},
                                     connect_timeout=5, read_timeout=10)
            try:
                probe_client.head_bucket(Bucket=bucket)
            except Exception as err:  # any failure means unreachable; say which
                raise StoreError(f"store {self.uri} is not reachable: {err}") from err
            return
        probe = self.uri
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
            raise StoreError(f"store {self.uri} is not writable (checked {probe})")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class InputFile:
    """One input file with what identifies its content version."""

    uri: str
    size: int
    version: str  # size and mtime on S3 (the listing has no ETag), mtime in nanoseconds locally


JSONL_COMPRESSIONS = ("", ".gz", ".zst", ".bz2", ".lz4")
"""The compression extensions jobs/input_files.py decodes for JSON lines ("" = none)."""
DATA_SUFFIXES = {
    # not .json: a directory's .json files are usually single documents (metadata, manifests)
    "jsonl": tuple(stem + c for c in JSONL_COMPRESSIONS for stem in (".jsonl", ".ndjson")),
    "parquet": (".parquet", ".pq"),
}


def resolve_inputs(patterns: list[str], options: S3Options, fmt: str | None = None) -> list[InputFile]:
    """Expand local or s3:// globs into a sorted, de-duplicated list of files.

    ``*``, ``?`` and ``[...]`` match within one path segment, ``**`` any number of
    segments. A pattern naming a directory means the files below it with ``fmt``'s
    extensions (e.g. .jsonl.gz for jsonl).
    """
    found: dict[str, InputFile] = {}
    for pattern in patterns:
        fs, path = filesystem_for(pattern, options)
        path = path.rstrip("/") or "/"  # "s3://bucket/raw/" means the directory raw
        base = _glob_base(path)
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.File:
            infos = [info]
        elif info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        else:
            infos = []
        whole_dir = base == path.rstrip("/") and info.type == pafs.FileType.Directory
        suffixes = DATA_SUFFIXES.get(fmt or "", ())
        for i in infos:
            if i.type != pafs.FileType.File:
                continue
            if whole_dir:
                if suffixes and not i.path.lower().endswith(suffixes):
                    continue
            elif not _glob_match(i.path, path):
                continue
            uri = f"s3://{i.path}" if is_s3(pattern) else i.path
            found[uri] = InputFile(uri, int(i.size or 0), _version(fs, i, is_s3(pattern)))
    return [found[k] for k in sorted(found)]


def _glob_match(path: str, pattern: str) -> bool:
    """Shell-style match where ``*`` stays within a segment and ``**`` spans segments."""
    return _match_parts(path.split("/"), pattern.split("/"))


def _match_parts(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match_parts(parts[k:], pattern[1:]) for k in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _match_parts(parts[1:], pattern[1:])


def _glob_base(path: str) -> str:
    parts = path.split("/")
    for n, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return "/".join(parts[:n]) or "/"
    return path


def _version(fs: pafs.FileSystem, info: pafs.FileInfo, s3: bool) -> str:
    if s3:
        # pyarrow's listing has no ETag; size + mtime identify an S3 object version well
        # enough for fingerprints (a rewrite changes LastModified).
        return f"{info.size}-{info.mtime_ns}"
    return str(info.mtime_ns)

