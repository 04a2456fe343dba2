"""The curated output: shards of about ``target_shard_mb`` plus ``_MANIFEST.json``.

With ``output.split_by``, each shard is written as one file per combination of the
columns' values, in nested folders ``<column>=<value>/`` (jobs/output_shards.py); the
manifest lists every file and, under ``splits``, each folder's rows, files and bytes. With
``output.weight_column`` too, each folder above the last split gets a ``_BLEND.txt``.

The output is written under ``output.path`` or ``<store>/runs/<run-id>/output``. Its
fingerprint is the last stage's plus the output config; when the manifest there already has
that fingerprint the write is skipped. Otherwise old shards are removed, the new ones are
written as ``part-<n>``, and the manifest is written last, so a reader that sees a manifest
sees complete shards.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from jobs import checkpoint as cp
from jobs.checkpoint import FileRef
from jobs.ledger import RunContext, StageCommit
from jobs.part_reader import logical_schema
from jobs.parts import INTERNAL_COLUMNS
from jobs.spec import redacted_config
from jobs.store import Store


class EarlyShards(Protocol):
    """Shards written before ``write_output`` (jobs/output_waves.py ``WaveOutput``)."""

    def finish(self, last: StageCommit) -> list[dict[str, Any]] | None: ...

MANIFEST = "_MANIFEST.json"
BLEND = "_BLEND.txt"


def output_place(ctx: RunContext, run_id: str, upstream: str) -> tuple[str, Store, str]:
    """Where the run's output goes (URI and store) and its fingerprint, for the last stage's
    fingerprint ``upstream``."""
    spec = ctx.spec
    uri = spec.output.path or ctx.store.url(f"runs/{run_id}/output")
    return uri, Store(uri, spec.s3_options()), cp.fingerprint({"upstream": upstream,
                                                               "output": spec.output.model_dump(mode="json")})


def current_manifest(out_store: Store, fingerprint: str) -> dict[str, Any] | None:
    """The manifest there when it has ``fingerprint`` (the output is up to date), else None."""
    existing = out_store.read_json(MANIFEST)
    return existing if existing is not None and existing.get("fingerprint") == fingerprint else None


def clear_output(out_store: Store) -> None:
    """Remove only what tamis wrote there (old shards, the old manifest, manifest first so no
    reader trusts half-deleted shards); output.path may hold other files of the user's."""
    out_store.delete_prefix(MANIFEST)
    for key in out_store.list(""):
        if _written_by_tamis(key):
            out_store.delete_prefix(key)


def write_output(ctx: RunContext, run_id: str, last: StageCommit, stages: list[dict[str, Any]],
                 started: float, early: EarlyShards | None = None) -> dict[str, Any]:
    """Write the last stage's rows as the run's output; returns the output's summary.

    ``stages`` are the stages' states as run.json holds them, for the manifest's funnel.
    ``early``: the shards already written wave by wave (jobs/output_waves.py), used when
    they cover every file of ``last``."""
    spec = ctx.spec
    uri, out_store, fp = output_place(ctx, run_id, last.fingerprint)
    existing = current_manifest(out_store, fp)
    if existing is not None:
        ctx.progress.event(f"output: {uri} is up to date (fingerprint {fp}), skipped")
        return _summary(uri, existing)
    weight = spec.output.weight_column
    t0 = time.time()  # the write's time after the stage: what the shards written during it did not do
    stats = early.finish(last) if early is not None else None
    if stats is None:
        clear_output(out_store)
        shards = cp.plan_even([(f.key, f.bytes) for f in last.files], spec.output.target_shard_bytes)
        stats = ctx.executor.run_write(shards, ctx.store, uri, spec.s3_options(), spec.output.format,
                                       spec.execution.batch_rows, spec.output.split_columns or None,
                                       weight) if shards else []
    files = sorted(({"path": s["key"], "rows": s["rows"], "bytes": s["bytes"],
                     **({"weight": json.loads(s["reasons"] or "{}").get("weight", 0.0)} if weight else {})}
                    for s in stats), key=lambda f: f["path"])
    splits = _splits(files)
    blends = _write_blends(out_store, uri, splits) if weight and splits else []
    manifest = {
        "run_id": run_id,
        "pipeline": spec.name,
        "fingerprint": fp,
        "created_at": time.time(),
        "rows_in": stages[0]["rows_in"],
        "rows_out": sum(f["rows"] for f in files),
        "funnel": [_funnel(s, ctx.store) for s in stages],
        "stages": {s["name"]: s["fingerprint"] for s in stages},
        "schema": _schema(ctx.store, last.files),
        "format": spec.output.format,
        "files": files,
        **({"split_by": spec.output.split_columns, "splits": splits} if spec.output.split_by else {}),
        **({"weight_column": weight, "blends": blends} if weight else {}),
        "config": redacted_config(spec),
        "write_seconds": round(time.time() - t0, 3),
        "wall_seconds": round(time.time() - started, 3),
    }
    out_store.write_json(MANIFEST, manifest)
    ctx.progress.event(f"output: {len(files)} shard(s), {manifest['rows_out']:,} rows at {uri}"
                       + "".join(f"; {name}: {s['rows']:,} rows" for name, s in splits.items())
                       + (f"; blend files: {', '.join(blends)}" if blends else ""))
    return _summary(uri, manifest)


def _written_by_tamis(key: str) -> bool:
    """A shard or blend file of an earlier output (``part-*``, or ``<column>=<value>/.../part-*``
    of a split, or a split's ``_BLEND.txt``): output.path may hold the user's own files, which stay."""
    *folders, name = key.split("/")
    return (name.startswith("part-") or name == BLEND) and all("=" in f for f in folders)


def _splits(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows, files, bytes (and weight) of each split folder (the deepest, ``a=x/b=y``)."""
    splits: dict[str, dict[str, Any]] = {}
    for f in files:
        if "/" not in f["path"]:
            continue
        split = splits.setdefault(f["path"].rsplit("/", 1)[0], {"rows": 0, "files": 0, "bytes": 0})
        split.update(rows=split["rows"] + f["rows"], files=split["files"] + 1, bytes=split["bytes"] + f["bytes"])
        if "weight" in f:
            split["weight"] = split.get("weight", 0.0) + f["weight"]
    return splits


def _write_blends(out: Store, uri: str, splits: dict[str, dict[str, Any]]) -> list[str]:
    """A ``_BLEND.txt`` in each folder above the last split: ``<weight> <path>`` for each of
    its split folders, the weights their shares of the folder's total (the form of
    Megatron-LM's ``--data-path``, or a file for ``--data-args-path``; each path is a folder of
    Parquet or JSON lines shards, which Megatron needs preprocessed into its own format)."""
    parents: dict[str, list[tuple[str, float]]] = {}
    for folder, split in sorted(splits.items()):
        parent = folder.rsplit("/", 1)[0] if "/" in folder else ""
        parents.setdefault(parent, []).append((folder, split.get("weight", 0.0)))
    written = []
    for parent, members in parents.items():
        total = sum(w for _, w in members) or 1.0
        line = " ".join(f"{w / total:.6g} {uri.rstrip('/')}/{folder}" for folder, w in members)
        key = f"{parent}/{BLEND}" if parent else BLEND
        with out.open_output(key) as sink:
            sink.write((line + "\n").encode())
        written.append(key)
    return written


def _funnel(stage: dict[str, Any], store: Store) -> dict[str, Any]:
    return {"stage": stage["name"], "op": stage["op"], "rows_in": stage["rows_in"],
            "rows_out": stage["rows_out"], "dropped": stage["dropped"], "info": stage.get("info") or {},
            "metrics": stage.get("metrics") or {},
            "rejected": store.url(f"{cp.stage_prefix(stage['name'], stage['fingerprint'])}/*/rejected/")
            if stage["dropped"] else None}


def _schema(store: Store, files: list[FileRef]) -> list[dict[str, str]]:
    if not files:
        return []
    schema = logical_schema(store, files[0].key)  # a linked file's own schema lacks its base's columns
    return [{"name": f.name, "type": str(f.type)} for f in schema if f.name not in INTERNAL_COLUMNS]


def _summary(uri: str, manifest: dict[str, Any]) -> dict[str, Any]:
    return {"uri": uri, "manifest": f"{uri.rstrip('/')}/{MANIFEST}", "rows": manifest["rows_out"],
            "files": len(manifest["files"]), "fingerprint": manifest["fingerprint"]}
