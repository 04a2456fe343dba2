"""How each operator kind runs on Ray Data; the only module that talks to Ray Data.

Every stage reads committed checkpoint files and writes new ones under names derived from its
input shard, never from Ray task or block numbers: a retried task overwrites its own files
and nothing else. Each Ray Data task or actor call handles whole files, streaming them in
batches of ``batch_rows`` so memory is bounded by batch size, and returns one small stats
row per file written; the scheduler turns those rows into commits.

* read:  one task per input file -> ``part-<file>-<chunk>.parquet`` (+ ``rejected/``)
* map:   one task (or actor call, for stateful/GPU operators) per upstream file, same name
* group: files -> hash-partition column -> ``groupby().map_groups`` -> ``part-<p>``
* fit:   one Ray task streams the whole input into ``fit`` and writes ``artifact.parquet``
* write: upstream files packed into shards of about ``target_shard_mb``
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from jobs.spec import InputSpec, ResourcesSpec
from jobs.store import S3Options, Store, filesystem_for
from operators.base import DROP_REASON, FitOperator, GroupOperator, Operator
from operators.io.records import FieldMapping, normalize_table, parse_jsonl_lines

log = logging.getLogger(__name__)

PARTITION = "_tamis_partition"
STATS_SCHEMA = pa.schema([("kind", pa.string()), ("key", pa.string()), ("rows", pa.int64()),
                          ("bytes", pa.int64()), ("reasons", pa.string())])


@dataclass(frozen=True)
class FileOutput:
    """Where one task writes: kept rows at ``<prefix>/<name>``, rejected at ``<prefix>/rejected/<name>``."""

    store: Store
    prefix: str

    def writer(self) -> "PartWriter":
        return PartWriter(self)


class PartWriter:
    """Streams batches of one output file (and its rejected twin) and reports stats rows."""

    def __init__(self, out: FileOutput) -> None:
        self.out = out
        self._open: dict[tuple[str, str], pq.ParquetWriter] = {}
        self._sinks: dict[tuple[str, str], Any] = {}
        self._rows: Counter[tuple[str, str]] = Counter()
        self._reasons: dict[tuple[str, str], Counter[str]] = {}

    def write(self, name: str, table: pa.Table) -> None:
        """Split ``table`` on its drop reason and append each side to its file."""
        if DROP_REASON in table.column_names:
            dropped = pc.is_valid(table[DROP_REASON])
            rejected = table.filter(dropped)
            kept = table.filter(pc.invert(dropped)).drop_columns([DROP_REASON])
            self._append("rejected", name, rejected)
        else:
            kept = table
        self._append("kept", name, kept)

    def write_rejected(self, name: str, table: pa.Table) -> None:
        self._append("rejected", name, table)

    def _append(self, kind: str, name: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        slot = (kind, name)
        if slot not in self._open:
            key = f"{self.out.prefix}/{'rejected/' if kind == 'rejected' else ''}{name}"
            sink = self.out.store.open_output(key)
            self._sinks[slot] = sink  # ParquetWriter does not close a stream it was handed
            self._open[slot] = pq.ParquetWriter(sink, table.schema, compression="zstd")
            self._reasons[slot] = Counter()
        writer = self._open[slot]
        if table.schema != writer.schema:
            table = _conform(table, writer.schema)
        writer.write_table(table)
        self._rows[slot] += table.num_rows
        if kind == "rejected":
            counts = pc.value_counts(table[DROP_REASON]).to_pylist()
            self._reasons[slot].update({c["values"]: c["counts"] for c in counts})

    def close(self) -> list[dict[str, Any]]:
        stats = []
        for (kind, name), writer in self._open.items():
            writer.close()
            self._sinks[(kind, name)].close()  # on S3 this completes the upload
            key = f"{self.out.prefix}/{'rejected/' if kind == 'rejected' else ''}{name}"
            size = self.out.store.fs.get_file_info(self.out.store.fs_path(key)).size
            stats.append({"kind": kind, "key": key, "rows": self._rows[(kind, name)], "bytes": size,
                          "reasons": json.dumps(dict(self._reasons[(kind, name)]))})
        self._open.clear()
        self._sinks.clear()
        return stats


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast a batch to the file's schema (e.g. an all-null column typed null in one batch)."""
    columns = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _stats_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=STATS_SCHEMA)


def iter_file_batches(store: Store, key: str, batch_rows: int) -> Iterator[pa.Table]:
    """Stream a committed Parquet file in batches of at most ``batch_rows`` rows."""
    with store.fs.open_input_file(store.fs_path(key)) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])


# -- read ---------------------------------------------------------------------------------
def _read_input_files(items: pa.Table, *, input_spec: InputSpec, s3: S3Options, out: FileOutput,
                      part_rows: int, batch_rows: int) -> pa.Table:
    stats: list[dict[str, Any]] = []
    fields = input_spec.field_mapping()
    for index, uri in zip(items["index"].to_pylist(), items["uri"].to_pylist()):
        writer = out.writer()
        for chunk, (docs, rejected) in _parse_input(uri, index, input_spec.format, fields, s3,
                                                    part_rows, batch_rows):
            name = f"part-{index:05d}-{chunk:04d}.parquet"
            writer.write(name, docs)
            writer.write_rejected(name, rejected)
        stats += writer.close()
    return _stats_table(stats)


def _parse_input(uri: str, index: int, fmt: str, fields: FieldMapping, s3: S3Options,
                 part_rows: int, batch_rows: int) -> Iterator[tuple[int, tuple[pa.Table, pa.Table]]]:
    """Yield (chunk number, parsed batch); a chunk is ``part_rows`` input rows."""
    fs, path = filesystem_for(uri, s3)
    row = 0
    if fmt == "parquet":
        with fs.open_input_file(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
                table = pa.Table.from_batches([batch])
                yield row // part_rows, normalize_table(table, uri, row, fields)
                row += table.num_rows
        return
    # open_input_stream decompresses by extension (.gz, .zst, .bz2); lines stay raw bytes so
    # invalid UTF-8 is caught per line instead of failing the file.
    with fs.open_input_stream(path) as raw:
        lines: list[bytes] = []
        for line in io.BufferedReader(raw, buffer_size=1 << 20):
            lines.append(line)
            if len(lines) == batch_rows or (row + len(lines)) % part_rows == 0:
                yield row // part_rows, parse_jsonl_lines(lines, uri, row, fields)
                row += len(lines)
                lines = []
        if lines:
            yield row // part_rows, parse_jsonl_lines(lines, uri, row, fields)


def run_read(files: list[tuple[int, str]], input_spec: InputSpec, s3: S3Options, out: FileOutput,
             part_rows: int, batch_rows: int, resources: ResourcesSpec) -> list[dict[str, Any]]:
    """Read ``(index, uri)`` input files in parallel; one stats row per file written."""
    ds = ray.data.from_items([{"index": i, "uri": u} for i, u in files], override_num_blocks=len(files))
    ds = ds.map_batches(_read_input_files, batch_size=1, batch_format="pyarrow",
                        fn_kwargs=dict(input_spec=input_spec, s3=s3, out=out, part_rows=part_rows,
                                       batch_rows=batch_rows),
                        **_task_options(resources, concurrency_default=None))
    return ds.take_all()


# -- map ------------------------------------------------------------------------------------
class FileMapper:
    """Applies a map operator to whole upstream files; an actor keeps the operator loaded."""

    def __init__(self, operator: type[Operator[Any]], config: Any, store: Store, out: FileOutput,
                 batch_rows: int, artifact_key: str | None) -> None:
        artifact = pq.read_table(store.fs_path(artifact_key), filesystem=store.fs) if artifact_key else None
        self.op = operator(config, artifact=artifact)
        self.store, self.out, self.batch_rows = store, out, batch_rows

    def __call__(self, items: pa.Table) -> pa.Table:
        stats: list[dict[str, Any]] = []
        for key in items["key"].to_pylist():
            writer = self.out.writer()
            name = key.rsplit("/", 1)[-1]
            for batch in iter_file_batches(self.store, key, self.batch_rows):
                writer.write(name, self.op(batch))
            stats += writer.close()
        return _stats_table(stats)


def _map_files(items: pa.Table, **kwargs: Any) -> pa.Table:
    return FileMapper(**kwargs)(items)


def run_map(operator: type[Operator[Any]], config: Any, keys: list[str], store: Store, out: FileOutput,
            batch_rows: int, resources: ResourcesSpec, artifact_key: str | None) -> list[dict[str, Any]]:
    """Run a map operator over upstream files; actors when it is stateful or uses a GPU."""
    ds = ray.data.from_items([{"key": k} for k in keys], override_num_blocks=len(keys))
    kwargs = dict(operator=operator, config=config, store=store, out=out, batch_rows=batch_rows,
                  artifact_key=artifact_key)
    hint = operator.resources
    num_gpus = resources.num_gpus if resources.num_gpus is not None else hint.num_gpus
    if hint.stateful or num_gpus:
        size = resources.concurrency or max(1, min(len(keys), _cluster_slots(resources, hint)))
        ds = ds.map_batches(FileMapper, fn_constructor_kwargs=kwargs, batch_size=1, batch_format="pyarrow",
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size),
                            num_gpus=num_gpus, **_cpu_memory(resources, hint))
    else:
        ds = ds.map_batches(_map_files, fn_kwargs=kwargs, batch_size=1, batch_format="pyarrow",
                            **_task_options(resources, concurrency_default=None))
    return ds.take_all()


# -- group ----------------------------------------------------------------------------------
def _read_partitioned(items: pa.Table, *, store: Store, key: tuple[str, ...], partitions: int,
                      batch_rows: int) -> Iterator[pa.Table]:
    """Stream files in batches, tagging each row with the hash partition of its group key."""
    for file_key in items["key"].to_pylist():
        for batch in iter_file_batches(store, file_key, batch_rows):
            values = zip(*(batch[k].cast(pa.string()).to_pylist() for k in key))
            parts = [int.from_bytes(hashlib.blake2b("\x1f".join(map(str, v)).encode(), digest_size=8).digest(),
                                    "little") % partitions for v in values]
            yield batch.append_column(PARTITION, pa.array(parts, pa.int64()))


def _apply_group(table: pa.Table, *, operator: type[GroupOperator[Any]], config: Any, key: tuple[str, ...],
                 out: FileOutput) -> pa.Table:
    partition = table[PARTITION][0].as_py()
    # Shuffle order depends on task timing; sorting makes the output identical run to run.
    table = table.drop_columns([PARTITION]).sort_by([(k, "ascending") for k in dict.fromkeys((*key, "id"))])
    result = operator(config)(table)
    writer = out.writer()
    writer.write(f"part-{partition:05d}.parquet", result)
    return _stats_table(writer.close())


def run_group(operator: type[GroupOperator[Any]], config: Any, keys: list[str], store: Store,
              out: FileOutput, partitions: int, batch_rows: int, resources: ResourcesSpec) -> list[dict[str, Any]]:
    """Hash-partition the input on the operator's key; each partition arrives whole."""
    key = operator(config).group_key()
    ds = ray.data.from_items([{"key": k} for k in keys], override_num_blocks=len(keys))
    ds = ds.map_batches(_read_partitioned, batch_size=1, batch_format="pyarrow",
                        fn_kwargs=dict(store=store, key=key, partitions=partitions, batch_rows=batch_rows))
    ds = ds.groupby(PARTITION).map_groups(_apply_group, batch_format="pyarrow",
                                          fn_kwargs=dict(operator=operator, config=config, key=key, out=out),
                                          **_cpu_memory(resources, operator.resources))
    return ds.take_all()


# -- fit ------------------------------------------------------------------------------------
def _fit(operator: type[FitOperator[Any]], config: Any, store: Store, keys: list[str], batch_rows: int,
         artifact_key: str) -> int:
    batches = (b for k in keys for b in iter_file_batches(store, k, batch_rows))
    artifact = operator(config).fit(batches)
    with store.open_output(artifact_key) as sink:
        pq.write_table(artifact, sink)
    return artifact.num_rows


def run_fit(operator: type[FitOperator[Any]], config: Any, keys: list[str], store: Store, batch_rows: int,
            artifact_key: str, resources: ResourcesSpec) -> int:
    """Stream every input file into one ``fit`` call on one worker; returns artifact rows."""
    hint = operator.resources
    task = ray.remote(_fit).options(
        num_cpus=resources.num_cpus if resources.num_cpus is not None else hint.num_cpus,
        num_gpus=resources.num_gpus if resources.num_gpus is not None else hint.num_gpus,
        max_retries=3)
    return ray.get(task.remote(operator, config, store, keys, batch_rows, artifact_key))


# -- write ----------------------------------------------------------------------------------
INTERNAL_COLUMNS = (DROP_REASON, PARTITION)


def _write_shards(items: pa.Table, *, store: Store, out_uri: str, s3: S3Options, fmt: str,
                  batch_rows: int) -> pa.Table:
    out = Store(out_uri, s3)
    stats = []
    for shard, keys_json in zip(items["shard"].to_pylist(), items["keys"].to_pylist()):
        name = f"part-{shard:05d}.{'parquet' if fmt == 'parquet' else 'jsonl.gz'}"
        rows, writer, sink = 0, None, out.open_output(name)
        text_out = gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) if fmt == "jsonl" else None
        for key in json.loads(keys_json):
            for batch in iter_file_batches(store, key, batch_rows):
                batch = batch.drop_columns([c for c in INTERNAL_COLUMNS if c in batch.column_names])
                if text_out is not None:
                    for record in batch.to_pylist():
                        text_out.write(json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n")
                else:
                    if writer is None:
                        writer = pq.ParquetWriter(sink, batch.schema, compression="zstd")
                    writer.write_table(_conform(batch, writer.schema) if batch.schema != writer.schema else batch)
                rows += batch.num_rows
        if writer is not None:
            writer.close()
        if text_out is not None:
            text_out.close()
        sink.close()
        stats.append({"kind": "output", "key": name, "rows": rows,
                      "bytes": out.fs.get_file_info(out.fs_path(name)).size, "reasons": "{}"})
    return _stats_table(stats)


def run_write(shards: list[list[str]], store: Store, out_uri: str, s3: S3Options, fmt: str,
              batch_rows: int) -> list[dict[str, Any]]:
    """Write each group of upstream files as one output shard ``part-<n>``."""
    items = [{"shard": n, "keys": json.dumps(keys)} for n, keys in enumerate(shards)]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(_write_shards, batch_size=1, batch_format="pyarrow",
                        fn_kwargs=dict(store=store, out_uri=out_uri, s3=s3, fmt=fmt, batch_rows=batch_rows))
    return ds.take_all()


# -- resources ------------------------------------------------------------------------------
def _cpu_memory(resources: ResourcesSpec, hint: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_cpus": resources.num_cpus if resources.num_cpus is not None else hint.num_cpus}
    memory_mb = resources.memory_mb or hint.memory_mb
    if memory_mb:
        opts["memory"] = memory_mb * 1024 * 1024
    return opts


def _task_options(resources: ResourcesSpec, concurrency_default: int | None) -> dict[str, Any]:
    from operators.base import ResourceHint

    opts = _cpu_memory(resources, ResourceHint())
    size = resources.concurrency or concurrency_default
    if size:
        opts["compute"] = ray.data.TaskPoolStrategy(size=size)
    return opts


def _cluster_slots(resources: ResourcesSpec, hint: Any) -> int:
    cpus = resources.num_cpus if resources.num_cpus is not None else hint.num_cpus
    total = ray.cluster_resources().get("CPU", 1)
    return max(1, int(total // max(cpus, 0.01)))
