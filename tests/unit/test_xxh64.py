"""The compiled XXH64 gives xxhash's own numbers (so no id-hash sample changes)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.xxh64 import xxh64_hashes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=40))
def test_equals_xxhash_on_any_text(values: list[str]) -> None:
    expected = np.array([xxhash.xxh64_intdigest(v.encode()) for v in values], dtype=np.uint64)
    assert np.array_equal(xxh64_hashes(pa.array(values, pa.string())), expected)


def test_every_length_boundary_a_slice_and_chunks() -> None:
    values = ["é" * n + "x" * m for n in range(3) for m in range(70)]
    expected = np.array([xxhash.xxh64_intdigest(v.encode()) for v in values], dtype=np.uint64)
    array = pa.array(values)
    assert np.array_equal(xxh64_hashes(array), expected)
    assert np.array_equal(xxh64_hashes(array.slice(5, 50)), expected[5:55])
    assert np.array_equal(xxh64_hashes(pa.chunked_array([array.slice(0, 9), array.slice(9)])), expected)
    assert len(xxh64_hashes(pa.array([], pa.string()))) == 0
