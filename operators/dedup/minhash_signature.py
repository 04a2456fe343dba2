"""The first primitive of ``minhash_dedup`` (see :mod:`operators.dedup.minhash`): MinHash
signatures reduced to LSH band hashes. In its own module, beside the other primitives, so
that the composite imports it and nothing imports the composite: no import cycle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from operators.base import MapOperator, OperatorConfig, set_column
from operators.dedup import minhash_math as mm
from operators.dedup.minhash_config import BANDS, SKETCH, MinhashDedupConfig, shingle_sets
from operators.registry import register


@register("minhash_dedup.signature")
class MinhashSignature(MapOperator[MinhashDedupConfig]):
    """MinHash signature per document, reduced to one 64-bit hash per LSH band.

    Reads: text. Writes: dedup_minhash_bands (fixed-size list of uint64, one per band; null
    for a document with no shingles, which is then never a candidate); with ``verify`` or
    an exact ``index``, also dedup_minhash_sketch (the low byte of each MinHash value: the
    keep step's pre-filter and the index's match test). Vectorized over the batch;
    deterministic for the same config (seeded hash functions).
    """

    keeps_rows = True
    version = 3  # 2: "fast" hashes words from their bytes and permutes 32-bit keys mod 2**32; 3: sketch with verify
    Config = MinhashDedupConfig
    reads = ("text",)
    writes = (BANDS,)

    def __init__(self, config: MinhashDedupConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self.perms = mm.Permutations(config.num_perm, config.lsh.seed, config.lsh.scheme)
        self.bands, self.rows = config.banding()
        self.sketch = SKETCH in self.columns_written(config)

    @classmethod
    def describe(cls, config: MinhashDedupConfig) -> dict[str, Any]:  # type: ignore[override]
        bands, rows = config.banding()
        return {"bands": bands, "rows": rows, "num_perm": config.num_perm,
                "candidate_probability_at_threshold": round(mm.candidate_probability(config.threshold, bands, rows), 4),
                "shingles": f"char {config.char_ngram}-grams" if config.char_ngram else f"word {config.ngram}-grams"}

    def __call__(self, batch: pa.Table) -> pa.Table:
        shingles = shingle_sets(batch["text"], self.config, as_sets=False)
        sigs = mm.signatures(shingles, self.perms)
        hashes = mm.band_hashes(sigs, self.bands, self.rows)
        values = pa.array(hashes.reshape(-1), pa.uint64())
        empty = pa.array(shingles.sizes == 0)
        bands = pa.FixedSizeListArray.from_arrays(values, self.bands, mask=empty)
        batch = set_column(batch, BANDS, bands)
        if self.sketch:  # keep's pre-filter and the exact index read the low byte of each value
            low = pa.array((sigs & np.uint64(0xFF)).astype(np.uint8).reshape(-1), pa.uint8())
            batch = set_column(batch, SKETCH, pa.FixedSizeListArray.from_arrays(low, self.config.num_perm, mask=empty))
        return batch

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        return (BANDS, SKETCH) if isinstance(config, MinhashDedupConfig) and writes_sketch(config) else (BANDS,)


def writes_sketch(config: MinhashDedupConfig) -> bool:
    """Whether the signature writes sketches: keep pre-filters with them, an exact index matches with them."""
    return config.verify or bool(config.index.name and config.index.form == "exact")
