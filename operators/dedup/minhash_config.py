"""Configuration and shared vocabulary of ``minhash_dedup`` (see :mod:`operators.dedup.minhash`).

The config classes, the column names and edge schema the primitives hand over, and the two
helpers several primitives share (:func:`shingle_sets`, :func:`fixed_list_values`). They sit
apart from the composite so that every primitive (signature, LSH, components, index, keep)
can import them while the composite imports the primitives, with no import cycle.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from operators.base import OperatorConfig
from operators.dedup import minhash_math as mm
from operators.dedup.shingling import Bits, ShingleSets, char_shingles, word_shingles

BANDS = "dedup_minhash_bands"
SKETCH = "dedup_minhash_sketch"
"""Lowest 8 bits of each MinHash value (b-bit MinHash, Li and Koenig 2010): what the exact
index keeps per band row to verify matches."""
COMPONENT = "dedup_minhash_component"
CANDIDATES = "dedup_minhash_candidates"
EDGE_SCHEMA = pa.schema([("src", pa.string()), ("dst", pa.string()), ("src_file", pa.string()),
                         ("dst_file", pa.string())])
"""Candidate edges, oriented from the larger id to the smaller, with each end's file."""


class LshConfig(OperatorConfig):
    bands: int | None = Field(None, gt=0, description="LSH bands; chosen from threshold and num_perm when unset.")
    rows: int | None = Field(None, gt=0, description="Rows per band; set together with bands.")
    false_negative_weight: float | None = Field(
        None, gt=0, lt=1, description="Weight of missed pairs vs false candidates when choosing bands "
        "(default 0.995 with verify, since verification removes false candidates and keep's checks grow with "
        "links, not components; 0.5 without).")
    seed: int = Field(1, description="Seed of the hash-function draw.")
    scheme: Literal["fast", "datasketch"] = Field(
        "fast", description="fast: 64-bit word hashes from UTF-8 bytes + affine permutations mod 2**32; "
        "datasketch: bit-identical to datasketch's legacy MinHash (slow, for checks).")


class ComponentsConfig(OperatorConfig):
    method: Literal["auto", "single", "distributed"] = Field(
        "auto", description="single: union of the candidate edges on one worker (scipy); distributed: "
        "large-star/small-star rounds over Ray Data, each committed; auto: single up to max_single_edges.")
    max_single_edges: int = Field(20_000_000, gt=0, description="Most candidate edges auto sends to one "
                                  "worker (about 100 bytes each in memory).")


class IndexConfig(OperatorConfig):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="Index in the "
                             "store (indexes/<name>/): also remove documents near-duplicating ones kept by the "
                             "earlier runs that added to it; null: no index.")
    form: Literal["exact", "bloom"] = Field("exact", description="exact: band hashes, ids and signatures, "
                                            "matched by a shuffle and verified; bloom: one Bloom filter per "
                                            "band (LSHBloom), probed in place, unverified.")
    update: bool = Field(True, description="Add this run's kept documents to the index when the run succeeds.")
    compact_segments: int = Field(16, ge=2, description="exact form: when a run would leave the index with more "
                                  "segments than this (one per run), it writes the whole index as one file instead.")
    bloom_capacity: int = Field(10_000_000, gt=0, description="Documents each band's Bloom filter is sized "
                                "for; fixed when the index is created.")
    bloom_fp_rate: float = Field(1e-5, gt=0, lt=1, description="False-positive rate of one band's filter at "
                                 "capacity; a document falsely matches with probability about bands x this.")


class MinhashDedupConfig(OperatorConfig):
    threshold: float = Field(0.8, gt=0, lt=1, description="Jaccard similarity of shingle sets that makes a "
                             "duplicate (below 1: identical texts are exact_dedup's job).")
    ngram: int = Field(5, gt=0, description="Words per shingle.")
    char_ngram: int | None = Field(None, gt=0, description="Use character n-grams of this size instead of words.")
    num_perm: int = Field(112, gt=0, le=1024, description="MinHash permutations (signature length).")
    scope: Literal["source", "global"] = Field("source", description="Deduplicate within each source, or globally.")
    verify: bool = Field(True, description="Check candidates' exact Jaccard before treating them as duplicates.")
    max_hops: int | None = Field(2, ge=1, description="With verify: the most verified links (each at the "
                                 "threshold or above) from a removed document to its keeper. 1: every removed "
                                 "document has a kept partner at the threshold. 2 and more: a candidate no linked "
                                 "keeper takes may also be removed as the copy of a linked removed document within "
                                 "max_hops - 1 links of its keeper (chains A~B~C lose C); its Jaccard with the keeper "
                                 "is then at least 1 - max_hops x (1 - threshold). null: chains of any length.")
    keep: str = Field("min_id", pattern=r"^(min_id|max:[A-Za-z0-9_]+)$",
                      description="Keeper of a cluster: min_id, or max:<column> (ties: smallest id).")
    map_digits: bool = Field(False, description="Map every digit to 0 before shingling.")
    lsh: LshConfig = Field(default_factory=LshConfig, description="Banding and hashing details.")
    components: ComponentsConfig = Field(default_factory=ComponentsConfig,
                                         description="How connected components of the candidates are found.")
    index: IndexConfig = Field(default_factory=IndexConfig,
                               description="Deduplicate against documents kept by earlier runs.")

    @model_validator(mode="before")
    @classmethod
    def _match_removed(cls, data: Any) -> Any:
        """``match_removed`` (2026-12-05, before ``max_hops``): true is chains of any length."""
        if isinstance(data, dict) and "match_removed" in data:
            data = dict(data)
            if "max_hops" in data:
                raise ValueError("give max_hops, not match_removed as well (match_removed: true is max_hops: null)")
            data["max_hops"] = None if data.pop("match_removed") else 1
        return data

    @model_validator(mode="after")
    def _bands_fit(self) -> "MinhashDedupConfig":
        if (self.lsh.bands is None) != (self.lsh.rows is None):
            raise ValueError("lsh.bands and lsh.rows go together: give both or neither")
        if self.lsh.bands is not None and self.lsh.bands * self.lsh.rows > self.num_perm:
            raise ValueError(f"lsh.bands x lsh.rows = {self.lsh.bands * self.lsh.rows} exceeds "
                             f"num_perm = {self.num_perm}")
        return self

    def banding(self) -> tuple[int, int]:
        if self.lsh.bands is not None and self.lsh.rows is not None:
            return self.lsh.bands, self.lsh.rows
        fn = self.lsh.false_negative_weight or (0.995 if self.verify else 0.5)
        return mm.optimal_bands(self.threshold, self.num_perm, fp_weight=1 - fn, fn_weight=fn)

    def keep_column(self) -> str | None:
        return self.keep.split(":", 1)[1] if self.keep.startswith("max:") else None


def shingle_sets(texts: pa.Array | pa.ChunkedArray, config: MinhashDedupConfig,
                 as_sets: bool = True, bits: Bits = 64) -> ShingleSets:
    """The shingles ``config`` describes (shared by signatures and verification); sets
    unless ``as_sets`` is False (word shingles only: repeats do not change a minimum);
    ``bits`` 32 for ``uint32`` hashes."""
    if config.char_ngram:
        return char_shingles(texts, config.char_ngram, config.lsh.scheme, map_digits=config.map_digits, bits=bits)
    return word_shingles(texts, config.ngram, config.lsh.scheme, map_digits=config.map_digits, as_sets=as_sets,
                         bits=bits)


VERIFY_BITS: Bits = 32
"""Width of the shingle hashes verification compares (:func:`~operators.dedup.shingling.narrowed`)."""


def verification_sets(texts: pa.Array | pa.ChunkedArray, config: MinhashDedupConfig) -> ShingleSets:
    """The shingle sets whose exact Jaccard ``minhash_dedup.keep`` compares (and
    ``tamis explain`` reports): :func:`shingle_sets` of :data:`VERIFY_BITS` bits."""
    return shingle_sets(texts, config, bits=VERIFY_BITS)



def fixed_list_values(column: pa.ChunkedArray | pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows x width) values of a fixed-size list column and the mask of its valid rows."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    flat = array.flatten().to_numpy()  # skips null rows' slots
    values = np.zeros((len(array), width), dtype=np.uint64)
    values[valid] = flat.reshape(-1, width)
    return values, valid
