"""Hashes shared across families (operators/hashing.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.hashing import byte_hashes, splitmix64


def reference(value: str | None) -> int:
    """FNV-1a 64 over UTF-8 bytes, then splitmix64, in plain Python."""
    h = 0xCBF29CE484222325
    for b in (value or "").encode():
        h = ((h ^ b) * 0x100000001B3) % 2**64
    return int(splitmix64(np.array([h], np.uint64))[0])


@settings(deadline=None)  # the first call compiles the kernel
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=30), st.integers(0, 5))
def test_byte_hashes_are_fnv1a_then_splitmix64_for_any_layout(values: list[str | None], cut: int) -> None:
    array = pa.array(values, pa.string())
    expected = [reference(v) for v in values]
    assert byte_hashes(array).tolist() == expected
    assert byte_hashes(array.slice(min(cut, len(values)))).tolist() == expected[min(cut, len(values)):]
    chunked = pa.chunked_array([array.slice(0, cut), array.slice(cut)], pa.string())
    assert byte_hashes(chunked).tolist() == expected
    assert byte_hashes(array.cast(pa.large_string())).tolist() == expected


def test_byte_hashes_spread_ids_evenly() -> None:
    u = byte_hashes(pa.array([f"d{i}" for i in range(100_000)]))
    counts = np.bincount((u >> np.uint64(60)).astype(np.int64), minlength=16)
    assert counts.min() > 6000 and counts.max() < 6500  # 6,250 expected per sixteenth
    assert len(np.unique(u)) == 100_000
