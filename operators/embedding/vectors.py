"""Shared helpers of the embedding-space operators: vectors out of Arrow, id hashes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.xxh64 import xxh64_hashes

EMBEDDING = "embedding"
CLUSTER_ID = "cluster_id"
CLUSTER_DISTANCE = "cluster_distance"
CLUSTER_SIZE = "cluster_size"


def embedding_matrix(values: pa.Array | pa.ChunkedArray, column: str = EMBEDDING) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a (fixed-size) list<float> column as a float32 matrix, and which rows are valid.

    A null row, or one whose length differs from the column's first valid row, is invalid and
    gets a zero vector. The vectors are used as given (the embed operator L2-normalizes them).

    Raises:
        TypeError: the column is not a list of floating-point numbers.
    """
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    n = len(array)
    kind = array.type
    if pa.types.is_null(kind):
        return np.zeros((n, 0), np.float32), np.zeros(n, bool)
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) \
            or not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise TypeError(f"column {column!r} is {kind}, not a list of floats")
    if pa.types.is_fixed_size_list(kind) and array.null_count == 0 and kind.list_size:
        # the common case (what embed writes): one copy of the flat values, no mask or filter
        flat = array.flatten().to_numpy(zero_copy_only=False)
        return flat.astype(np.float32, copy=True).reshape(n, kind.list_size), np.ones(n, bool)
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
    if pa.types.is_fixed_size_list(kind):
        d = kind.list_size
        lengths = np.full(n, d)
    else:
        lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
        d = int(lengths[valid][0]) if valid.any() else 0
    valid &= lengths == d
    out = np.zeros((n, d), np.float32)
    if valid.any() and d:
        rows = array.filter(pa.array(valid))
        flat = pc.list_flatten(rows).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        out[valid] = flat.reshape(-1, d)
    return out, valid


def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """xxh64 of each id's UTF-8 bytes: an order-free, worker-free sampling key."""
    return xxh64_hashes(ids)


def int_column(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """An integer column as int64 numbers (nulls as -1) and its validity mask."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
    return pc.fill_null(array.cast(pa.int64()), -1).to_numpy(zero_copy_only=False), valid


def float_column(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric column as float64, nulls as NaN."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return pc.fill_null(array.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
