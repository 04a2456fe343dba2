"""How each operator kind runs on Ray Data; the only module that talks to Ray Data.

Every task or actor call handles whole files, streams them in batches of ``batch_rows``,
writes its outputs under names derived from its input (never from Ray task or block
numbers, so a retry overwrites its own files and nothing else) and returns one stats row
per file written, which the ledger turns into commits. docs/architecture.md has the table
of what each stage kind (read, map, group, fit, write) runs and writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import ray

from jobs import shuffle
from jobs.file_chain import FileChain, MapStep, noted
from jobs.wave_stream import done_row, item_stats, item_table, split_by_wave
from jobs.input_files import parse_input
from jobs.output_shards import write_shard
from jobs.parquet_columns import PassThrough
from jobs.parts import FILE_COLUMN, FileOutput, append_by_file, iter_file_batches, metrics_row, stats_table
from jobs.spec import InputSpec, ResourcesSpec
from jobs.store import S3Options, Store
from jobs.transient_io import MAP_RETRIES, TRANSIENT_IO_ERRORS, retry_transient
from operators.base import FitOperator, GroupOperator, ResourceHint
from operators.io.sample import sample_table

log = logging.getLogger(__name__)

# -- read ---------------------------------------------------------------------------------
def _read_input_files(items: pa.Table, *, input_spec: InputSpec, s3: S3Options, outs: tuple[FileOutput, ...],
                      part_rows: int, batch_rows: int, columns: PassThrough | None = None) -> pa.Table:
    """Each input file of ``items`` read into the wave's read stage; one item row per file
    (jobs/wave_stream.py)."""
    done: list[list[dict[str, Any]]] = []
    fields = input_spec.field_mapping()
    for index, uri, wave in zip(items["index"].to_pylist(), items["uri"].to_pylist(), items["wave"].to_pylist()):
        try:
            writer = outs[wave].writer()
            for chunk, (docs, rejected) in parse_input(uri, input_spec.format, fields, s3, part_rows=part_rows,
                                                       batch_rows=batch_rows, on_corrupt=input_spec.on_corrupt_file,
                                                       columns=columns):
                if input_spec.sample is not None:  # rejected rows too: the sample is of input records
                    docs, rejected = (sample_table(t, input_spec.sample.fraction, input_spec.sample.seed)
                                      for t in (docs, rejected))
                name = f"part-{index:05d}-{chunk:04d}.parquet"
                writer.write(name, docs)
                writer.append("rejected", name, rejected)
            done.append(writer.close() + [done_row(outs[wave].prefix)])
        except Exception as err:  # whatever it is, the user must learn which file (jobs/cli.py root_cause)
            if not any(n.startswith("input file:") for n in getattr(err, "__notes__", [])):
                err.add_note(f"input file: {uri}")
            raise noted(err, "read")
    return item_table(done)


def run_read(waves: list[list[tuple[int, str]]], input_spec: InputSpec, s3: S3Options, outs: tuple[FileOutput, ...],
             part_rows: int, batch_rows: int, store: Store, then: list[MapStep],
             columns: PassThrough | None = None) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Read the ``(index, uri)`` input files of every wave in one streaming job, the map
    stages ``then`` running on what they write; yields ``(wave, its stats rows)`` as each
    wave finishes (one stats row per file written by any stage), in wave order. Parquet
    files' other columns are conformed to ``columns`` (jobs/parquet_columns.py)."""
    items = [{"index": i, "uri": u, "wave": w} for w, files in enumerate(waves) for i, u in files]
    ds = _per_item(items, _read_input_files, **_task_options(ResourcesSpec(), ResourceHint()),
                   fn_kwargs=dict(input_spec=input_spec, s3=s3, outs=outs, part_rows=part_rows,
                                  batch_rows=batch_rows, columns=columns))
    ds = _then(ds, then, tuple(o.prefix for o in outs), store, batch_rows, len(items))
    return _stream(ds, _wave_prefixes(outs, then), [len(files) for files in waves], actors=_uses_actors(then))


def _items(items: list[dict[str, Any]]) -> ray.data.Dataset:
    """One row (and one block, so one task or actor call) per item: a file, a partition, a shard."""
    return ray.data.from_items(items, override_num_blocks=len(items))


def _per_item(items: list[dict[str, Any]], fn: Any, **options: Any) -> ray.data.Dataset:
    """``fn`` applied to each item on its own (a one-row pyarrow batch)."""
    return _items(items).map_batches(fn, batch_size=1, batch_format="pyarrow", **options)


# -- map ------------------------------------------------------------------------------------
def _map_files(items: pa.Table, **kwargs: Any) -> pa.Table:
    return FileChain(**kwargs)(items)


def run_map(steps: list[MapStep], waves: list[list[str]], store: Store,
            batch_rows: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run a chain of map stages over the upstream files of every wave in one streaming job,
    each file streamed from one stage to the next; every stage writes (and reports) its own
    files. Yields ``(wave, its stats rows)`` as each wave finishes, in wave order."""
    items = [{"key": k, "wave": w} for w, keys in enumerate(waves) for k in keys]
    if not items:
        return iter([(w, []) for w in range(len(waves))])
    ds = _then(_items(items), steps, None, store, batch_rows, len(items))
    return _stream(ds, _wave_prefixes((), steps), [len(keys) for keys in waves], actors=_uses_actors(steps))


def _wave_prefixes(head: tuple[FileOutput, ...], steps: list[MapStep]) -> list[list[str]]:
    """Each wave's output prefixes, of every stage of the job."""
    outs = [o for o in (head, *[s.outs for s in steps]) if o]
    return [[o[w].prefix for o in outs] for w in range(len(outs[0]))]


def _then(ds: ray.data.Dataset, steps: list[MapStep], follows: tuple[str, ...] | None, store: Store,
          batch_rows: int, files: int) -> ray.data.Dataset:
    """Append the map stages ``steps``; the first maps the files named by ``ds`` (``key``
    and ``wave`` rows) or, when ``follows`` is set, those written under its prefixes (one per
    wave). Actors when a stage is
    stateful or uses a GPU, tasks otherwise; consecutive task stages with the same resources
    are one Ray Data operator, a :class:`~jobs.file_chain.FileChain` that hands each batch
    through all of them (Ray Data would fuse them into one task anyway, but then each would
    read its input back from the one before)."""
    for segment in _segments(steps):
        kwargs = dict(steps=segment, store=store, batch_rows=batch_rows, follows=follows)
        # one item (an input file and all that was written for it) per call (jobs/wave_stream.py)
        # (Ray Data wants a batch size wherever GPUs are asked for)
        batching: dict[str, Any] = dict(batch_size=1, batch_format="pyarrow")
        step = segment[0]
        need = effective(step.resources, step.operator.resources)
        if _uses_actors([step]):
            if need.num_gpus and step.resources.num_cpus is None:
                need = gpu_actor_cpus(need, step.name)
            cpus = max(need.num_cpus, 0.01)
            by_gpus = int(cluster_gpus() // need.num_gpus) if need.num_gpus else files
            size = step.resources.concurrency or max(1, min(files, int(cluster_cpus() // cpus), by_gpus))
            # GPU actors all start at once (they hold GPUs nothing else can use, and start-up
            # is torch, CUDA and the model: idle GPU time); CPU actors grow as work queues
            ds = ds.map_batches(FileChain, fn_constructor_kwargs=kwargs, **batching,
                                compute=ray.data.ActorPoolStrategy(min_size=size if need.num_gpus else 1,
                                                                   max_size=size),
                                num_gpus=need.num_gpus, **_cpu_memory(need))
        else:
            ds = ds.map_batches(_map_files, fn_kwargs=kwargs, **batching,
                                **_task_options(step.resources, step.operator.resources))
        follows = tuple(o.prefix for o in segment[-1].outs)
    return ds


def _segments(steps: list[MapStep]) -> list[list[MapStep]]:
    """``steps`` cut into runs that one task maps together: consecutive task (not actor)
    stages asking for the same resources; an actor stage is a run of its own."""
    segments: list[list[MapStep]] = []
    for step in steps:
        last = segments[-1][-1] if segments else None
        if last is not None and not _uses_actors([last, step]) and _task_resources(last) == _task_resources(step):
            segments[-1].append(step)
        else:
            segments.append([step])
    return segments


# -- group ----------------------------------------------------------------------------------
def _partition_files(items: pa.Table, *, operator: type[GroupOperator[Any]], config: Any, store: Store,
                     out: FileOutput, partitions: int, batch_rows: int) -> pa.Table:
    """Shuffle phase 1 (see jobs/shuffle.py) for each file of ``items``."""
    op = operator(config)
    # A projection reads only its declared columns: LSH buckets never touch the text.
    columns = list(operator.columns_read(config)) if op.emits == "artifact" else None
    stats: list[dict[str, Any]] = []
    for number, key, from_state in zip(items["number"].to_pylist(), items["key"].to_pylist(),
                                       items["state"].to_pylist()):
        stats += shuffle.partition_file(op, store, key, number, from_state, out, partitions, batch_rows, columns)
    if op.bypass_null_keys and op.emits == "documents":  # what the operator did to the bypassing rows
        stats += metrics_row(op.metrics())
    return stats_table(stats)


def _reduce_partitions(items: pa.Table, *, operator: type[GroupOperator[Any]], config: Any, store: Store,
                       out: FileOutput) -> pa.Table:
    """Shuffle phase 2 for each partition of ``items``."""
    stats: list[dict[str, Any]] = []
    for partition, keys in zip(items["partition"].to_pylist(), items["keys"].to_pylist()):
        stats += shuffle.reduce_partition(operator(config), store, partition, json.loads(keys), out)
    return stats_table(stats)


def run_group(operator: type[GroupOperator[Any]], config: Any, keys: list[str], store: Store,
              out: FileOutput, partitions: int, batch_rows: int, resources: ResourcesSpec,
              state_keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Hash-partition the (projected) input on the operator's key through fragment files in
    the store; each partition arrives whole at one task (jobs/shuffle.py).

    ``state_keys`` are the files of the cross-run state the operator reads
    (``cross_run_state``), grouped together with the input."""
    fragments = f"{out.prefix}/{shuffle.SHUFFLE_DIR}"
    store.delete_prefix(fragments)  # an interrupted attempt's, perhaps with another partition count
    items = [{"number": n, "key": k, "state": n >= len(keys)} for n, k in enumerate([*keys, *(state_keys or [])])]
    stats = _collect(_per_item(items, _partition_files, fn_kwargs=dict(
        operator=operator, config=config, store=store, out=out, partitions=partitions, batch_rows=batch_rows)))
    stats, by_partition = shuffle.fragments_by_partition(stats)
    if by_partition:
        reduce_items = [{"partition": p, "keys": json.dumps(k)} for p, k in by_partition.items()]
        need = effective(resources, operator.resources)  # semantic_dedup: a GPU share where there are GPUs
        stats += _collect(_per_item(reduce_items, _reduce_partitions, **_cpu_memory(need),
                                    **({"num_gpus": need.num_gpus} if need.num_gpus else {}),
                                    fn_kwargs=dict(operator=operator, config=config, store=store, out=out)))
    store.delete_prefix(fragments)
    return stats


# -- fit ------------------------------------------------------------------------------------
def _fit(operator: type[FitOperator[Any]], config: Any, store: Store, keys: list[str], batch_rows: int,
         out: FileOutput, threads: int = 1) -> list[dict[str, Any]]:
    # a fit on documents reads only the columns it declares (a quantile sample never needs text)
    columns = list(operator.columns_read(config)) if operator.fit_on == "documents" else []
    batches = (b for k in keys for b in iter_file_batches(store, k, batch_rows, columns or None))
    op = operator(config)
    op.threads = threads
    artifact = op.fit(batches)
    writer = out.writer()
    if FILE_COLUMN not in artifact.column_names:
        writer.append("artifact", "part-00000.parquet", artifact)
        return writer.close() + metrics_row(op.metrics())
    append_by_file(writer, artifact)
    return writer.close() + metrics_row(op.metrics())


def run_fit(operator: type[FitOperator[Any]], config: Any, keys: list[str], store: Store, batch_rows: int,
            out: FileOutput, resources: ResourcesSpec) -> list[dict[str, Any]]:
    """Stream the input files into one ``fit`` call on one worker; returns artifact stats rows.

    A ``multithreaded`` fit reserves every CPU of the largest node (nothing else runs during
    a fit; the largest with enough GPUs where it asks for GPUs) unless the YAML sets
    ``resources.num_cpus``, and runs that many threads."""
    need = effective(resources, operator.resources)
    cpus = need.num_cpus
    if operator.multithreaded and resources.num_cpus is None:
        cpus = max(cpus, node_cpus(need.num_gpus))
    threads = max(1, int(cpus))
    if operator.multithreaded:
        log.info("%s: one task on %d CPUs%s, %d threads", operator.name, cpus,
                 f" and {need.num_gpus:g} GPU(s)" if need.num_gpus else "", threads)
    task = ray.remote(_fit_retrying).options(num_cpus=cpus, num_gpus=need.num_gpus, max_retries=3,
                                    **({"memory": need.memory_mb << 20} if need.memory_mb else {}))
    return ray.get(task.remote(operator, config, store, keys, batch_rows, out, threads))


def _fit_retrying(*args: Any) -> list[dict[str, Any]]:
    """:func:`_fit`, run again after a transient storage error (Ray retries only system
    failures of a task)."""
    return retry_transient(lambda: _fit(*args), f"{args[0].name} fit")


# -- write ----------------------------------------------------------------------------------
def _write_shards(items: pa.Table, *, store: Store, out_uri: str, s3: S3Options, fmt: str,
                  batch_rows: int, split_by: list[str] | None = None, weight_column: str | None = None) -> pa.Table:
    out = Store(out_uri, s3)
    stats = []
    for shard, keys_json in zip(items["shard"].to_pylist(), items["keys"].to_pylist()):
        stats += write_shard(store, out, shard, json.loads(keys_json), fmt, batch_rows, split_by, weight_column)
    return stats_table(stats)


def run_write(shards: list[list[str]], store: Store, out_uri: str, s3: S3Options, fmt: str,
              batch_rows: int, split_by: list[str] | None = None,
              weight_column: str | None = None, first_shard: int = 0) -> list[dict[str, Any]]:
    """Write each group of upstream files as one output shard ``part-<n>``, n from
    ``first_shard`` on (with ``split_by``, one per combination of values: jobs/output_shards.py)."""
    items = [{"shard": first_shard + n, "keys": json.dumps(keys)} for n, keys in enumerate(shards)]
    return _collect(_per_item(items, _write_shards, fn_kwargs=dict(
        store=store, out_uri=out_uri, s3=s3, fmt=fmt, batch_rows=batch_rows, split_by=split_by,
        weight_column=weight_column)))


# -- resources ------------------------------------------------------------------------------
def _collect(ds: ray.data.Dataset, *, actors: bool = False) -> list[dict[str, Any]]:
    """Run ``ds`` and return its rows.

    By default Ray Data reserves half of the cluster's CPUs for its operators' own use,
    split between them; a dataset of one fused task stage fed by ``from_items`` is then
    held to half the CPUs (one task at a time on 2 CPUs; docs/benchmarks.md). The
    reservation protects actor pools further down a chain from being starved by the stages
    before them; a dataset without actors has none to protect, so it runs without it.
    """
    if not actors:
        # Dataset has no public setter for its own context; the global DataContext is shared
        # by every run a scheduler drives, so it is not touched.
        ds._context.op_resource_reservation_enabled = False
    _retry_transient_errors(ds)
    return ds.take_all()


def _retry_transient_errors(ds: ray.data.Dataset) -> None:
    """Run a task again when it failed on a transient storage error (jobs/transient_io.py):
    every task here rewrites the same files under the same names."""
    ds._context.retried_map_errors = list(TRANSIENT_IO_ERRORS)
    ds._context.max_map_retries = MAP_RETRIES


def _stream(ds: ray.data.Dataset, prefixes: list[list[str]], items: list[int], *,
            actors: bool = False) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Run ``ds`` (``items[w]`` items of each wave ``w``, one item row each) and yield each
    wave's stats rows once all its items are done, in wave order (jobs/wave_stream.py: an
    item's rows travel with its done marker, so Ray Data need not keep order). The job starts
    once: its actors (a GPU model) live across waves."""
    if not actors:
        ds._context.op_resource_reservation_enabled = False  # as in _collect
    _retry_transient_errors(ds)
    batches = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    return split_by_wave((item_stats(batch) for batch in batches), prefixes, items)


def _task_resources(step: MapStep) -> tuple[ResourceHint, int | None]:
    """What a task stage asks Ray for: stages asking the same can share a task."""
    return effective(step.resources, step.operator.resources), step.resources.concurrency


def _uses_actors(steps: list[MapStep]) -> bool:
    """Whether any of these map stages runs on actors (stateful, or wanting GPUs)."""
    return any((need := effective(s.resources, s.operator.resources)).stateful or need.num_gpus for s in steps)


def effective(resources: ResourcesSpec, hint: ResourceHint) -> ResourceHint:
    """The operator's resource hint with whatever the YAML's ``resources:`` sets on top.

    An operator that wants a GPU only where there is one (``gpus_when_available``) gets it
    when the cluster has GPUs; asking for one on a CPU-only cluster would wait forever.
    """
    gpus = hint.num_gpus or (hint.gpus_when_available if hint.gpus_when_available and cluster_gpus() else 0.0)
    return ResourceHint(
        num_cpus=resources.num_cpus if resources.num_cpus is not None else hint.num_cpus,
        num_gpus=resources.num_gpus if resources.num_gpus is not None else gpus,
        memory_mb=resources.memory_mb or hint.memory_mb, stateful=hint.stateful)


def gpu_actor_cpus(need: ResourceHint, stage: str) -> ResourceHint:
    """CPUs per GPU actor, from the cluster: the actors sharing a GPU get half of the CPUs
    there are per GPU (the other half reads and tokenizes for them), at most 2 each.

    An encode actor's host work (padding, pinned copies, kernel launches) must not starve
    behind the tokenize tasks; 2 CPUs each for 4 actors on a 16-CPU GPU node measured 5 %
    faster than 1 (docs/benchmarks.md). Logged, since it depends on the machine."""
    gpus = cluster_gpus()
    per_gpu = cluster_cpus() / gpus if gpus else 1.0
    actors_per_gpu = max(1.0, 1.0 / need.num_gpus)
    cpus = round(max(0.25, min(2.0, per_gpu / 2 / actors_per_gpu)), 2)
    log.info("%s: %g actors per GPU, %g CPUs each (%.0f CPUs per GPU in the cluster; "
             "resources.num_cpus overrides)", stage, actors_per_gpu, cpus, per_gpu)
    return dataclasses.replace(need, num_cpus=cpus)


def _cpu_memory(need: ResourceHint) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_cpus": need.num_cpus}
    if need.memory_mb:
        opts["memory"] = need.memory_mb << 20
    return opts


def _task_options(resources: ResourcesSpec, hint: ResourceHint) -> dict[str, Any]:
    opts = _cpu_memory(effective(resources, hint))
    if resources.concurrency:
        opts["compute"] = ray.data.TaskPoolStrategy(size=resources.concurrency)
    return opts


def node_cpus(gpus: float = 0.0) -> float:
    """CPUs of the largest alive node with at least ``gpus`` GPUs (what one task asking for
    that many GPUs can reserve at most: more would wait forever on a cluster whose largest
    node is a CPU node)."""
    return max((n["Resources"].get("CPU", 0.0) for n in ray.nodes()
                if n.get("Alive") and n["Resources"].get("GPU", 0.0) >= gpus), default=1.0)


def cluster_gpus() -> float:
    """GPUs in the Ray cluster (0 on a CPU-only one)."""
    return float(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    """CPUs in the Ray cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
