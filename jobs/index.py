"""The incremental near-duplicate index in the store: versions, pinning, and advancing.

::

    indexes/<name>/v-00003.json                        version 3 (created, never rewritten)
    indexes/<name>/segments/<run>-<output fp>/part-*.parquet   exact form: band rows of one run
    indexes/<name>/bloom/v-00003.parquet                bloom form: the whole filter set

A version names its parent, the run that made it, that run's output fingerprint, and every
file a reader needs (exact: all segments so far; bloom: one filter file). A run pins the
newest version not made by itself (so rerunning a finished run does not match its own
documents), probes it, and after its output is written creates version ``pinned + 1``
with the store's conditional put. If another run got there first the put is refused and
the run fails with :class:`IndexConflictError`: rerunning it re-plans against the newer
version, reusing every stage before the index match.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from jobs import checkpoint as cp
from jobs.parts import iter_file_batches, parquet_writer, read_files
from jobs.store import Store
from operators.dedup.minhash_config import BANDS, SKETCH, MinhashDedupConfig
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.minhash_index import KEEP, bloom_update, index_row_schema, index_rows

VERSION = re.compile(r"v-(\d{5,})\.json$")


class IndexConflictError(RuntimeError):
    """Another run advanced the index since this run pinned it."""


def compat(config: MinhashDedupConfig) -> str:
    """Fingerprint of what makes band hashes comparable across runs (not the threshold)."""
    bands, rows = config.banding()
    fields = {"ngram": config.ngram, "char_ngram": config.char_ngram, "num_perm": config.num_perm,
              "scope": config.scope, "map_digits": config.map_digits, "bands": bands, "rows": rows,
              "seed": config.lsh.seed, "scheme": config.lsh.scheme, "form": config.index.form,
              # a new signature algorithm gives different band hashes for the same text
              "signature_version": MinhashSignature.version}
    if config.index.form == "bloom":
        fields.update(capacity=config.index.bloom_capacity, fp_rate=config.index.bloom_fp_rate)
    return cp.fingerprint(fields)


class MinhashIndex:
    """One named index in a store."""

    def __init__(self, store: Store, config: MinhashDedupConfig) -> None:
        assert config.index.name
        self.store, self.config = store, config
        self.prefix = f"indexes/{config.index.name}"

    def version(self, number: int) -> dict[str, Any] | None:
        return self.store.read_json(f"{self.prefix}/v-{number:05d}.json") if number else None

    def current(self) -> dict[str, Any] | None:
        numbers = [int(m.group(1)) for k in self.store.list(self.prefix) if (m := VERSION.search(k))
                   and k.count("/") == self.prefix.count("/") + 1]
        return self.version(max(numbers)) if numbers else None

    def pin(self, run_id: str) -> dict[str, Any]:
        """The newest version this run did not make (version 0: the empty index)."""
        version = self.current()
        while version is not None and version["run_id"] == run_id:
            version = self.version(version["parent"])
        if version is not None and version["compat"] != compat(self.config):
            raise ValueError(f"index {self.config.index.name!r} was built with other MinHash settings "
                             f"(shingles, num_perm, bands x rows, seed, scheme, scope or form); use the "
                             f"same settings or another index name")
        return version or {"version": 0, "files": [], "documents": 0}

    def advance(self, run_id: str, pinned: dict[str, Any], output_fp: str,
                doc_files: list[str], batch_rows: int) -> dict[str, Any]:
        """Add the kept documents of ``doc_files`` as version ``pinned + 1``; idempotent."""
        current = self.current()
        if current is not None and current["run_id"] == run_id and current["parent"] == pinned["version"] \
                and current["output_fingerprint"] == output_fp:
            return current  # this run advanced it already (a rerun after the commit)
        if current is not None and current["version"] != pinned["version"] and not (
                current["run_id"] == run_id and current["parent"] == pinned["version"]):
            raise IndexConflictError(
                f"index {self.config.index.name!r} moved from version {pinned['version']} to "
                f"{current['version']} (run {current['run_id']!r}) while this run used it; rerun to "
                f"deduplicate against the newer version (stages before the index match are reused)")
        number = (current["version"] if current else 0) + 1
        batches = self._kept(doc_files, batch_rows)
        if self.config.index.form == "bloom":
            key = f"{self.prefix}/bloom/v-{number:05d}-{output_fp[:8]}.parquet"
            base = read_files(self.store, pinned["files"][:1]) if pinned["files"] else None
            added, table = 0, base
            for batch in batches:
                table = bloom_update(table, batch, self.config)
                added += batch.num_rows
            if table is None:
                table = bloom_update(None, _empty_docs(self.config), self.config)
            self._write(key, iter([table]), table.schema)
            files = [key]
        else:
            key = f"{self.prefix}/segments/{run_id}-{output_fp[:8]}/part-00000.parquet"
            added = 0

            def rows() -> Iterator[pa.Table]:
                nonlocal added
                for batch in batches:
                    added += batch.num_rows
                    yield index_rows(batch, self.config)

            self._write(key, rows(), index_row_schema(self.config.num_perm))
            files = [*pinned["files"], key]
        body = {"version": number, "parent": pinned["version"], "run_id": run_id, "output_fingerprint": output_fp,
                "compat": compat(self.config), "form": self.config.index.form, "files": files,
                "added": added, "documents": pinned["documents"] + added, "created_at": time.time()}
        if not self.store.create_json(f"{self.prefix}/v-{number:05d}.json", body):
            raise IndexConflictError(f"index {self.config.index.name!r}: another run created version "
                                     f"{number} at the same time; rerun to deduplicate against it")
        return body

    def _kept(self, doc_files: list[str], batch_rows: int) -> Iterator[pa.Table]:
        columns = ["id", "source", BANDS, KEEP] + ([SKETCH] if self.config.index.form == "exact" else [])
        for key in doc_files:
            for batch in iter_file_batches(self.store, key, batch_rows, columns):
                yield batch

    def _write(self, key: str, tables: Iterator[pa.Table], schema: pa.Schema) -> None:
        with self.store.open_output(key) as sink:
            with parquet_writer(sink, schema) as writer:
                for table in tables:
                    writer.write_table(table.cast(schema))


def _empty_docs(config: MinhashDedupConfig) -> pa.Table:
    bands = config.banding()[0]
    return pa.table({"id": pa.array([], pa.string()), "source": pa.array([], pa.string()),
                     BANDS: pa.array([], pa.list_(pa.uint64(), bands)), KEEP: pa.array([], pa.bool_())})
