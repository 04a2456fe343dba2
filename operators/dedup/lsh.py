"""LSH candidates -> star edges -> connected components -> each document's component.

The three middle primitives of ``minhash_dedup`` (see :mod:`operators.dedup.minhash`).
Candidates are documents sharing any band hash (Indyk and Motwani 1998; banding as in
Leskovec, Rajaraman and Ullman, ch. 3). A bucket of k members contributes k-1 star edges to
its smallest id rather than k(k-1)/2 pairs; connectivity is the same.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import FILE_COLUMN, FitOperator, GroupOperator, MapOperator, Rounds, set_column
from operators.dedup.minhash_config import (BANDS, CANDIDATES, COMPONENT, EDGE_SCHEMA, MinhashDedupConfig,
                                            fixed_list_values)
from operators.hashing import splitmix64, string_hashes
from operators.dedup.star_components import ComponentsByFile, LargeStar, SmallStar, StarSizes
from operators.registry import register
from operators.runs import run_heads, run_starts

SCOPE, BAND, HASH = "_lsh_scope", "_lsh_band", "_lsh_hash"
BUCKET = "_lsh_bucket"


def band_rows(batch: pa.Table, config: MinhashDedupConfig) -> pa.Table:
    """One row per (document with bands, band): scope, band, band hash, id (and the file)."""
    bands, _ = config.banding()
    values, valid = fixed_list_values(batch[BANDS], bands)
    docs = np.flatnonzero(valid)
    take = pa.array(np.repeat(docs, bands))
    scope = batch["source"] if config.scope == "source" else pa.array([""] * batch.num_rows, pa.string())
    columns = {SCOPE: scope.take(take), BAND: pa.array(np.tile(np.arange(bands, dtype=np.int32), len(docs))),
               HASH: pa.array(values[docs].reshape(-1), pa.uint64()), "id": batch["id"].take(take)}
    if FILE_COLUMN in batch.column_names:
        columns[FILE_COLUMN] = batch[FILE_COLUMN].take(take)
    return pa.table(columns)


def bucket_rows(batch: pa.Table, config: MinhashDedupConfig) -> pa.Table:
    """:func:`band_rows` with (scope, band, band hash) folded into one ``uint64`` bucket key.

    ``splitmix64(splitmix64(blake2b(scope) ^ splitmix64(band)) ^ hash)``: the shuffle then
    hashes, sorts and compares one number per row instead of a string and two numbers
    (with :attr:`~operators.base.GroupOperator.lone_rows_matter`, a much cheaper phase 2;
    docs/benchmarks.md). Within a scope and band the
    key is a bijection of the band hash; two buckets of different (scope, band) share a key
    with probability 2**-64 per pair (about 1e-5 over 1M documents x 14 bands), and all that
    does is add a candidate pair, which ``verify`` checks.
    """
    rows = band_rows(batch, config)
    scope = string_hashes(rows[SCOPE])
    band = rows[BAND].to_numpy().astype(np.uint64)
    key = splitmix64(splitmix64(scope ^ splitmix64(band)) ^ rows[HASH].to_numpy())
    columns = {BUCKET: pa.array(key, pa.uint64()), "id": rows["id"]}
    if FILE_COLUMN in rows.column_names:
        columns[FILE_COLUMN] = rows[FILE_COLUMN]
    return pa.table(columns)


@register("minhash_dedup.buckets")
class LshBuckets(GroupOperator[MinhashDedupConfig]):
    """Star edges of LSH buckets: every member to the bucket's smallest id.

    Projects each document into one row per band (bucket key of scope, band and band hash,
    see :func:`bucket_rows`; id; file); groups by bucket. Buckets of one document are dropped
    before the sort (``lone_rows_matter``). Reads: id, source, dedup_minhash_bands. Writes no
    document column: emits the edge artifact (src, dst, src_file, dst_file), de-duplicated
    within each partition.
    Deterministic: rows arrive sorted by key and id.
    """

    version = 2
    Config = MinhashDedupConfig
    reads = ("id", "source", BANDS)
    emits = "artifact"
    lone_rows_matter = False
    needs_unique_ids = True  # edges, components and keepers are per id

    def group_key(self) -> tuple[str, ...]:
        return (BUCKET,)

    def project(self, batch: pa.Table) -> pa.Table:
        return bucket_rows(batch, self.config)

    def __call__(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        if n == 0:
            return EDGE_SCHEMA.empty_table()
        starts = run_starts(table[BUCKET].to_numpy())
        # rows are sorted by key then id: each bucket's first row holds its smallest id
        first = run_heads(starts)
        members = np.flatnonzero(~starts)
        edges = pa.table({"src": table["id"].take(members), "dst": table["id"].take(first[members]),
                          "src_file": table[FILE_COLUMN].take(members),
                          "dst_file": table[FILE_COLUMN].take(first[members])}, schema=EDGE_SCHEMA)
        # the same pair often shares several bands
        return edges.group_by(EDGE_SCHEMA.names, use_threads=False).aggregate([]).select(EDGE_SCHEMA.names)


@register("minhash_dedup.components")
class LshComponents(FitOperator[MinhashDedupConfig]):
    """Connected components of the candidate graph: scipy on one worker, or star rounds.

    Up to ``components.max_single_edges`` edges (``method: auto``), scipy.sparse.csgraph on
    one worker; beyond, large-star/small-star rounds over Ray Data
    (:mod:`operators.dedup.star_components`), each committed. Both give the same table.

    Reads: the edge artifact (not the documents). Writes the component artifact: one row
    per document in a component of two or more:
    id, its file, dedup_minhash_component (the component's smallest id) and
    dedup_minhash_candidates (its size); split per document file by jobs/. Memory is about
    100 bytes per edge endpoint: ~1 GB holds ten million candidate edges.
    """

    version = 1
    Config = MinhashDedupConfig
    fit_on = "artifact"
    rounds = Rounds(steps=(LargeStar, SmallStar), finish=(StarSizes, ComponentsByFile),
                    converged_metric="non_star_nodes")

    def use_rounds(self, input_rows: int) -> bool:
        method = self.config.components.method
        return method == "distributed" or (method == "auto" and input_rows > self.config.components.max_single_edges)

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        edges = pa.concat_tables([b.select(EDGE_SCHEMA.names) for b in batches] or [EDGE_SCHEMA.empty_table()])
        ids = pa.concat_arrays([edges["src"].combine_chunks(), edges["dst"].combine_chunks()])
        files = pa.concat_arrays([edges["src_file"].combine_chunks(), edges["dst_file"].combine_chunks()])
        encoded = pc.dictionary_encode(ids)
        nodes = encoded.dictionary
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        m = len(edges)
        n = len(nodes)
        graph = coo_matrix((np.ones(m, dtype=np.int8), (codes[:m], codes[m:])), shape=(n, n))
        count, labels = connected_components(graph, directed=False)
        # a node's file: the file of any of its edge endpoints (an id lives in one file)
        node_file = pa.array(files).take(pa.array(np.unique(codes, return_index=True)[1]))
        table = pa.table({"id": nodes, FILE_COLUMN: node_file, "_label": pa.array(labels)})
        table = table.sort_by([("_label", "ascending"), ("id", "ascending")])
        sorted_labels = table["_label"].to_numpy()
        first = run_heads(run_starts(sorted_labels))
        sizes = np.bincount(sorted_labels, minlength=count)[sorted_labels]
        self._metrics = {"candidate_edges": m, "candidate_documents": n, "candidate_components": count}
        return pa.table({"id": table["id"], FILE_COLUMN: table[FILE_COLUMN],
                         COMPONENT: table["id"].take(pa.array(first)),
                         CANDIDATES: pa.array(sizes.astype(np.int64))})

    def metrics(self) -> dict[str, float]:
        return self._metrics


@register("minhash_dedup.assign")
class AssignComponent(MapOperator[MinhashDedupConfig]):
    """Each document's candidate component from its file's slice of the component table.

    Reads: id. Writes: dedup_minhash_component (null outside any component) and
    dedup_minhash_candidates (1 outside any component). Deterministic.
    """

    keeps_rows = True
    version = 1
    Config = MinhashDedupConfig
    reads = ("id",)
    writes = (COMPONENT, CANDIDATES)
    uses_artifact = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.artifact is None or self.artifact.num_rows == 0:
            component = pa.nulls(batch.num_rows, pa.string())
            size = pa.array(np.ones(batch.num_rows, dtype=np.int64))
        else:
            index = pc.index_in(batch["id"], value_set=self.artifact["id"])
            component = self.artifact[COMPONENT].take(index)
            size = pc.fill_null(self.artifact[CANDIDATES].take(index), 1)
        return set_column(set_column(batch, COMPONENT, component), CANDIDATES, size)
