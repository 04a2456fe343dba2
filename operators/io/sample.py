"""A deterministic sample of documents by id hash, for debugging runs (`tamis run --sample`).

A document is in the sample when ``splitmix64(blake2b64(id) ^ splitmix64(seed)) < fraction *
2**64``: the same documents on every call with the same seed, a different set for another
seed, spread evenly over every input file (no file is read first or skipped), and nested:
the sample at a smaller fraction is a subset of the one at a larger fraction for the same
seed. The id's hash is ``operators.hashing.string_hashes``; bottom-k sampling by hash is
the usual way to take a sample that is stable across machines and reruns (Broder 1997).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from operators.hashing import splitmix64, string_hashes

_TWO_64 = float(2**64)


def sample_mask(ids: pa.Array | pa.ChunkedArray, fraction: float, seed: int) -> pa.BooleanArray:
    """True for each id in the sample of ``fraction`` (0 < fraction <= 1) under ``seed``."""
    if fraction >= 1.0:
        return pa.array(np.ones(len(ids), dtype=bool))
    salt = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    mixed = splitmix64(string_hashes(ids) ^ salt)
    # compare in float: the bound 2**64 * fraction does not fit uint64 at fraction 1
    return pa.array(mixed.astype(np.float64) < fraction * _TWO_64)


def sample_table(table: pa.Table, fraction: float, seed: int, id_column: str = "id") -> pa.Table:
    """The rows of ``table`` whose ``id_column`` is in the sample."""
    if table.num_rows == 0 or fraction >= 1.0:
        return table
    return table.filter(sample_mask(table[id_column], fraction, seed))
