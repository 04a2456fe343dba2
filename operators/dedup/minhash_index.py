"""Near-duplicates of documents kept by earlier runs: the incremental MinHash index.

An index holds, for every document earlier runs kept, its band hashes per scope, in one of
two forms; the operators that read it declare it as cross-run state (:class:`ReadsIndex`),
which jobs/state.py stores and versions:

* ``exact``: rows (scope, band, band hash, id, 8-bit sketch). ``index_match`` (group on
  scope, band, hash) meets this run's band rows with the index rows; a new document sharing
  a bucket with an indexed one is a match when, with ``verify``, the b-bit MinHash estimate
  of their Jaccard similarity (Li and Koenig, "b-Bit Minwise Hashing", WWW 2010), from the
  lowest 8 bits of each of the ``num_perm`` values, reaches ``threshold``: the indexed text
  is not kept, so exact Jaccard is not available. Its standard error is about
  sqrt(s(1-s)/num_perm), 0.038 at s = 0.8 with 112 permutations.
  ``index_assign`` (map over each file's slice) writes the match onto the documents.
* ``bloom`` (LSHBloom, Khan et al. 2024, arXiv 2411.04257): one Bloom filter per band over
  the band hashes, all of one fixed size chosen from a capacity and a per-band false
  positive rate. ``index_probe`` (map) marks a document as a match when any of its band
  hashes is in that band's filter. No ids, no verification: a document with no true match
  is still marked with probability about ``bands x fp_rate``.

``minhash_dedup.keep`` removes matched documents (``dedup_minhash_keep`` false) and never
picks them as keepers of this run's clusters.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collections.abc import Iterator

from operators.base import FILE_COLUMN, CrossRunState, GroupOperator, MapOperator, OperatorConfig, set_column
from operators.dedup.lsh import BAND, HASH, SCOPE, band_rows
from operators.dedup import minhash_math as mm
from operators.dedup.minhash_config import BANDS, SKETCH, MinhashDedupConfig, fixed_list_values
from operators.dedup.minhash_signature import MinhashSignature
from operators.registry import register
from operators.runs import run_heads, run_starts

PRIOR_MATCH = "dedup_minhash_prior_match"
PRIOR_ID = "dedup_minhash_prior_id"
KEEP = "dedup_minhash_keep"
PRIOR = "_lsh_prior"
MATCH_SCHEMA = pa.schema([("id", pa.string()), (FILE_COLUMN, pa.string()), (PRIOR_ID, pa.string())])
BLOOM_SCHEMA = pa.schema([("band", pa.int32()), ("bits", pa.large_binary())])


def index_row_schema(num_perm: int) -> pa.Schema:
    """Rows of an exact index segment."""
    return pa.schema([(SCOPE, pa.string()), (BAND, pa.int32()), (HASH, pa.uint64()), ("id", pa.string()),
                      (SKETCH, pa.list_(pa.uint8(), num_perm))])


def index_rows(docs: pa.Table, config: MinhashDedupConfig) -> pa.Table:
    """Exact-index rows of the documents in ``docs`` that are kept (``dedup_minhash_keep``)."""
    keep = pc.fill_null(docs[KEEP], False) if KEEP in docs.column_names else pa.array([True] * docs.num_rows)
    docs = docs.filter(pc.and_(keep, pc.is_valid(docs[BANDS])))
    rows = band_rows(docs, config)
    signature = docs[SKETCH].combine_chunks() if docs.num_rows else pa.array([], docs.schema.field(SKETCH).type)
    per_doc = config.banding()[0]
    take = pa.array(np.repeat(np.arange(docs.num_rows), per_doc))
    return pa.table({SCOPE: rows[SCOPE], BAND: rows[BAND], HASH: rows[HASH], "id": rows["id"],
                     SKETCH: signature.take(take)}, schema=index_row_schema(config.num_perm))


class ReadsIndex:
    """The index as cross-run state: named by ``index.name``, its versions usable together
    only with the same band hashes, folded from a run's kept documents when it succeeds."""

    @classmethod
    def cross_run_state(cls, config: MinhashDedupConfig) -> CrossRunState | None:  # type: ignore[override]
        if not config.index.name:
            return None
        bands, rows = config.banding()
        # what makes band hashes comparable across runs (not the threshold); a new signature
        # algorithm gives other hashes for the same text
        compat = {"ngram": config.ngram, "char_ngram": config.char_ngram, "num_perm": config.num_perm,
                  "scope": config.scope, "map_digits": config.map_digits, "bands": bands, "rows": rows,
                  "seed": config.lsh.seed, "scheme": config.lsh.scheme, "form": config.index.form,
                  "signature_version": MinhashSignature.version}
        bloom = config.index.form == "bloom"
        if bloom:
            compat.update(capacity=config.index.bloom_capacity, fp_rate=config.index.bloom_fp_rate)
        columns = ("id", "source", BANDS, KEEP) + (() if bloom else (SKETCH,))
        return CrossRunState("indexes", "index", config.index.name, compat, columns, config.index.update, bloom,
                             None if bloom else config.index.compact_segments)

    @classmethod
    def fold_state(cls, config: MinhashDedupConfig, previous: pa.Table | None,  # type: ignore[override]
                   documents: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """Exact: the kept documents' index rows. Bloom: the filters with them added."""
        if config.index.form == "exact":
            yield index_row_schema(config.num_perm).empty_table()
            yield from (index_rows(batch, config) for batch in documents)
            return
        table = previous
        for batch in documents:
            table = bloom_update(table, batch, config)
        if table is None:  # a first run that kept nothing: empty filters
            none = pa.table({BANDS: pa.array([], pa.list_(pa.uint64(), config.banding()[0])), KEEP: pa.array([], pa.bool_())})
            table = bloom_update(None, none, config)
        yield table


@register("minhash_dedup.index_match")
class IndexMatch(ReadsIndex, GroupOperator[MinhashDedupConfig]):
    """Documents sharing a band bucket with an indexed document of an earlier run.

    Reads: id, source, dedup_minhash_bands, dedup_minhash_sketch, plus the index rows
    jobs/ adds (cross-run state). Writes no document column: emits the match artifact
    (id, its file, dedup_minhash_prior_id: the smallest matching indexed id). With ``verify``
    a match needs a sketch estimate of Jaccard of at least ``threshold``.
    """

    version = 1
    Config = MinhashDedupConfig
    reads = ("id", "source", BANDS, SKETCH)
    emits = "artifact"

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    def group_key(self) -> tuple[str, ...]:
        return (SCOPE, BAND, HASH)

    def project(self, batch: pa.Table) -> pa.Table:
        batch = batch.filter(pc.is_valid(batch[BANDS]))
        rows = band_rows(batch, self.config)
        per_doc = self.config.banding()[0]
        take = pa.array(np.repeat(np.arange(batch.num_rows), per_doc))
        return rows.append_column(SKETCH, batch[SKETCH].take(take)).append_column(
            PRIOR, pa.array(np.zeros(rows.num_rows, dtype=bool)))

    def state_project(self, rows: pa.Table) -> pa.Table:
        """Index rows in the projected form (no file; flagged as prior)."""
        return pa.table({SCOPE: rows[SCOPE], BAND: rows[BAND], HASH: rows[HASH], "id": rows["id"],
                         FILE_COLUMN: pa.nulls(rows.num_rows, pa.string()), SKETCH: rows[SKETCH],
                         PRIOR: pa.array(np.ones(rows.num_rows, dtype=bool))})

    def __call__(self, table: pa.Table) -> pa.Table:
        if table.num_rows == 0:
            return MATCH_SCHEMA.empty_table()
        bucket = run_heads(run_starts(*(table[c].to_numpy(zero_copy_only=False) for c in (SCOPE, BAND, HASH))))
        prior = table[PRIOR].to_numpy(zero_copy_only=False)
        new_rows, prior_rows = np.flatnonzero(~prior), np.flatnonzero(prior)
        # prior rows are in bucket order: each new row's bucket maps to a range of them
        lo = np.searchsorted(bucket[prior_rows], bucket[new_rows], side="left")
        hi = np.searchsorted(bucket[prior_rows], bucket[new_rows], side="right")
        counts = hi - lo
        left = np.repeat(new_rows, counts)
        right = prior_rows[np.repeat(lo, counts) + _ranges(counts)]
        self._count("bucket_pairs", len(left))
        if self.config.verify and len(left):
            passed = sketch_similarity(table[SKETCH], left, right, self.config.num_perm) >= self.config.threshold
            left, right = left[passed], right[passed]
        self._count("matched_pairs", len(left))
        matches = pa.table({"id": table["id"].take(pa.array(left)), FILE_COLUMN: table[FILE_COLUMN].take(pa.array(left)),
                            PRIOR_ID: table["id"].take(pa.array(right))})
        best = matches.group_by(["id", FILE_COLUMN], use_threads=False).aggregate([(PRIOR_ID, "min")])
        return best.rename_columns(["id", FILE_COLUMN, PRIOR_ID]).select(MATCH_SCHEMA.names).cast(MATCH_SCHEMA)

    def _count(self, name: str, value: int) -> None:
        self._metrics[name] = self._metrics.get(name, 0) + value

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)


@register("minhash_dedup.index_assign")
class AssignPrior(MapOperator[MinhashDedupConfig]):
    """Each document's match in the index, from its file's slice of the match artifact.

    Reads: id. Writes: dedup_minhash_prior_match (bool), dedup_minhash_prior_id (the
    smallest matching indexed id, null without a match).
    """

    keeps_rows = True
    version = 1
    Config = MinhashDedupConfig
    reads = ("id",)
    writes = (PRIOR_MATCH, PRIOR_ID)
    uses_artifact = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.artifact is None or self.artifact.num_rows == 0:
            prior = pa.nulls(batch.num_rows, pa.string())
        else:  # a document may be matched in several partitions: take the smallest id
            best = self.artifact.group_by("id", use_threads=False).aggregate([(PRIOR_ID, "min")])
            prior = best[f"{PRIOR_ID}_min"].take(pc.index_in(batch["id"], value_set=best["id"]))
        return set_column(set_column(batch, PRIOR_MATCH, pc.is_valid(prior)), PRIOR_ID, prior)


@register("minhash_dedup.index_probe")
class BloomProbe(ReadsIndex, MapOperator[MinhashDedupConfig]):
    """LSHBloom probe: a document matches when any of its band hashes is in that band's filter.

    Reads: dedup_minhash_bands (and the index's Bloom filters, cross-run state). Writes:
    dedup_minhash_prior_match (bool), dedup_minhash_prior_id (always null: filters hold no ids).
    """

    keeps_rows = True
    version = 1
    Config = MinhashDedupConfig
    reads = (BANDS,)
    writes = (PRIOR_MATCH, PRIOR_ID)

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self.filters = bloom_filters(artifact, config)

    def __call__(self, batch: pa.Table) -> pa.Table:
        bands = self.config.banding()[0]
        values, valid = fixed_list_values(batch[BANDS], bands)
        match = np.zeros(batch.num_rows, dtype=bool)
        if self.filters is not None:
            m_bits, k = bloom_parameters(self.config)
            for band in range(bands):
                match |= bloom_contains(self.filters[band], values[:, band], m_bits, k)
        match &= valid
        return set_column(set_column(batch, PRIOR_MATCH, pa.array(match)), PRIOR_ID,
                          pa.nulls(batch.num_rows, pa.string()))


# -- Bloom filters ----------------------------------------------------------------------------
def bloom_parameters(config: MinhashDedupConfig) -> tuple[int, int]:
    """(bits, hash functions) of each band's filter: m = -n ln p / (ln 2)^2, k = m/n ln 2."""
    n, p = config.index.bloom_capacity, config.index.bloom_fp_rate
    m = max(64, int(math.ceil(-n * math.log(p) / math.log(2) ** 2)))
    m = (m + 7) // 8 * 8
    return m, max(1, round(m / n * math.log(2)))


def _positions(hashes: np.ndarray, m_bits: int, k: int) -> np.ndarray:
    """Kirsch-Mitzenmacher double hashing: bit i of a key is (h1 + i h2) mod m."""
    h = hashes.astype(np.uint64)
    h1 = h & np.uint64(0xFFFFFFFF)
    h2 = (h >> np.uint64(32)) | np.uint64(1)
    i = np.arange(k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return ((h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(m_bits)).astype(np.int64)


def bloom_add(bits: np.ndarray, hashes: np.ndarray, m_bits: int, k: int) -> None:
    """Set the bits of ``hashes`` in the packed filter ``bits`` (uint8, little-endian bits)."""
    pos = _positions(hashes, m_bits, k).reshape(-1)
    np.bitwise_or.at(bits, pos >> 3, (1 << (pos & 7)).astype(np.uint8))


def bloom_contains(bits: np.ndarray, hashes: np.ndarray, m_bits: int, k: int) -> np.ndarray:
    """Whether every bit of each hash is set (false positives possible, no false negatives)."""
    if len(hashes) == 0:
        return np.zeros(0, dtype=bool)
    pos = _positions(hashes, m_bits, k)
    return np.all((bits[pos >> 3] >> (pos & 7)) & 1, axis=1).astype(bool)


def bloom_filters(table: pa.Table | None, config: MinhashDedupConfig) -> list[np.ndarray] | None:
    """The per-band bit arrays of a Bloom index table (None for an empty index)."""
    if table is None or table.num_rows == 0:
        return None
    table = table.sort_by("band")
    return [np.frombuffer(b, dtype=np.uint8).copy() for b in table["bits"].to_pylist()]


def bloom_table(filters: list[np.ndarray]) -> pa.Table:
    return pa.table({"band": pa.array(np.arange(len(filters), dtype=np.int32)),
                     "bits": pa.array([f.tobytes() for f in filters], pa.large_binary())}, schema=BLOOM_SCHEMA)


def bloom_update(table: pa.Table | None, docs: pa.Table, config: MinhashDedupConfig) -> pa.Table:
    """``table``'s filters (empty ones when None) with the kept documents' band hashes added."""
    bands = config.banding()[0]
    m_bits, k = bloom_parameters(config)
    filters = bloom_filters(table, config) or [np.zeros(m_bits // 8, dtype=np.uint8) for _ in range(bands)]
    keep = pc.fill_null(docs[KEEP], False) if KEEP in docs.column_names else pa.array([True] * docs.num_rows)
    values, valid = fixed_list_values(docs[BANDS], bands)
    rows = valid & keep.to_numpy(zero_copy_only=False)
    for band in range(bands):
        bloom_add(filters[band], values[rows, band], m_bits, k)
    return bloom_table(filters)


def sketch_similarity(sketches: pa.ChunkedArray | pa.Array, left: np.ndarray, right: np.ndarray,
                      num_perm: int) -> np.ndarray:
    """b-bit MinHash estimate (b = 8) of the Jaccard similarity of rows ``left`` and ``right``:
    equal low bytes happen with probability s + (1 - s) / 256."""
    array = sketches.combine_chunks() if isinstance(sketches, pa.ChunkedArray) else sketches
    values = array.flatten().to_numpy().reshape(-1, num_perm)
    return mm.sketch_jaccard(values[left], values[right])


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def index_columns(config: OperatorConfig) -> tuple[str, ...]:
    """Columns the keep step reads when the config names an index."""
    return (PRIOR_MATCH, PRIOR_ID) if isinstance(config, MinhashDedupConfig) and config.index.name else ()
