"""Blocks of cosine similarities for semantic dedup, on the CPU (numpy) or a GPU (torch).

semantic_dedup.dedup_cluster walks the lower triangle of a cluster's similarity matrix in
blocks and keeps only per-row and per-column maxima. The O(n^2 d) products and the O(n^2)
reductions over each block are what cost; both backends do them where the vectors live and
hand back only block-length vectors (maxima, argmaxima, a pending mask), so on a GPU the
host sees O(n) numbers per block, never the n x n matrix.

Both round each float64 (or float32) product to float32 before any comparison, take the first
index among equal maxima (numpy's argmax rule; torch documents the same for ``max(dim)``), and
leave matrix products in full precision (TF32 off), so a GPU decides exactly as the CPU does
(up to float64 rounding ties, about 1e-9 per pair, see semantic_dedup.py).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Protocol

import numpy as np


class SimilarityBlocks(Protocol):
    """What dedup_cluster needs from a backend; ``block`` objects stay on the backend's device."""

    def load(self, x: np.ndarray) -> None: ...
    def gram(self, s: int, e: int, c: int, f: int) -> Any: ...
    def lower(self, block: Any) -> Any: ...
    def col_max(self, block: Any) -> np.ndarray: ...
    def row_argmax(self, block: Any, columns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...
    def rows_above(self, block: Any, threshold: float) -> np.ndarray: ...
    def rows(self, block: Any, rows: np.ndarray) -> np.ndarray: ...


class NumpyBlocks:
    """Blocks computed with numpy's BLAS on the CPU."""

    device = "cpu"

    def __init__(self, precision: str) -> None:
        self.dtype = np.float64 if precision == "float64" else np.float32
        self.x = np.empty((0, 0), self.dtype)

    def load(self, x: np.ndarray) -> None:
        self.x = np.ascontiguousarray(x, dtype=self.dtype)

    def gram(self, s: int, e: int, c: int, f: int) -> np.ndarray:
        return (self.x[s:e] @ self.x[c:f].T).astype(np.float32)

    def lower(self, block: np.ndarray) -> np.ndarray:
        return np.where(np.tri(len(block), k=-1, dtype=bool), block, np.float32(-np.inf)).astype(np.float32)

    def col_max(self, block: np.ndarray) -> np.ndarray:
        return block.max(axis=0)

    def row_argmax(self, block: np.ndarray, columns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if columns is not None:
            block = np.where(columns, block, np.float32(-np.inf))
        j = block.argmax(axis=1)
        return block[np.arange(len(block)), j], j

    def rows_above(self, block: np.ndarray, threshold: float) -> np.ndarray:
        return (block > threshold).any(axis=1)

    def rows(self, block: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return block[rows]


class TorchBlocks:
    """Blocks computed with torch on a CUDA device (or torch's CPU, for tests); only
    block-length vectors come back to the host."""

    def __init__(self, precision: str, device: str = "cuda") -> None:
        import torch

        self.torch = torch
        self.device = device
        torch.backends.cuda.matmul.allow_tf32 = False  # full float32 products, as numpy's
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        self.x: Any = None
        self._tri: Any = None

    def load(self, x: np.ndarray) -> None:
        # float32 over the bus (half the bytes of float64), widened on the device
        self.x = self.torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device).to(self.dtype)

    def gram(self, s: int, e: int, c: int, f: int) -> Any:
        return (self.x[s:e] @ self.x[c:f].T).to(self.torch.float32)

    def lower(self, block: Any) -> Any:
        n = block.shape[0]
        if self._tri is None or self._tri.shape[0] < n:
            self._tri = self.torch.ones(n, n, dtype=self.torch.bool, device=self.device).tril(-1)
        return block.masked_fill(~self._tri[:n, :n], float("-inf"))

    def col_max(self, block: Any) -> np.ndarray:
        return block.max(dim=0).values.cpu().numpy()

    def row_argmax(self, block: Any, columns: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        if columns is not None:
            mask = self.torch.from_numpy(columns).to(self.device)
            block = block.masked_fill(~mask[None, :], float("-inf"))
        values, j = block.max(dim=1)
        return values.cpu().numpy(), j.cpu().numpy()

    def rows_above(self, block: Any, threshold: float) -> np.ndarray:
        return (block > threshold).any(dim=1).cpu().numpy()

    def rows(self, block: Any, rows: np.ndarray) -> np.ndarray:
        return block[self.torch.from_numpy(rows).to(self.device)].cpu().numpy()


@functools.lru_cache(maxsize=1)
def gpu_visible() -> bool:
    """Whether torch sees a CUDA GPU here (Ray hides the GPUs from a task that asked for
    none); torch is imported only where an NVIDIA driver is present."""
    if not (os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def similarity_blocks(device: str, precision: str) -> NumpyBlocks | TorchBlocks:
    """The backend for ``device`` (auto: cuda when torch sees a GPU, else cpu).

    Raises:
        RuntimeError: ``cuda`` was asked for and no GPU is visible.
    """
    if device == "auto":
        device = "cuda" if gpu_visible() else "cpu"
    if device == "cuda":
        if not gpu_visible():
            raise RuntimeError("semantic_dedup device: cuda, but torch sees no CUDA GPU in this worker "
                               "(give the stage resources: {num_gpus: ...}, or use device: auto)")
        return TorchBlocks(precision)
    return NumpyBlocks(precision)
