"""Seeded random unit vectors for the embedding-space tests and benchmark."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, d: int, centers: int, spread: float, seed: int) -> np.ndarray:
    """``n`` unit vectors around ``centers`` random unit centers, noise ``spread`` per axis."""
    rng = np.random.default_rng(seed)
    c = unit(rng.standard_normal((centers, d)))
    return unit(c[rng.integers(0, centers, n)] + spread * rng.standard_normal((n, d)).astype(np.float32))


def with_near_copies(base: np.ndarray, copies: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``base`` plus ``copies`` noisy copies of its first rows; returns (vectors, origin row)."""
    rng = np.random.default_rng(seed)
    origin = np.concatenate([np.arange(len(base)), rng.integers(0, len(base), copies)])
    extra = base[origin[len(base):]] + noise * rng.standard_normal((copies, base.shape[1])).astype(np.float32)
    return np.concatenate([base, unit(extra)]), origin


def embedding_array(x: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x, np.float32).ravel()), x.shape[1])


def doc_table(x: np.ndarray, **columns: object) -> pa.Table:
    """Documents ``d00000``.. with ``embedding`` = rows of ``x`` and any extra columns."""
    ids = [f"d{i:05d}" for i in range(len(x))]
    return pa.table({"id": ids, "embedding": embedding_array(x), **columns})
