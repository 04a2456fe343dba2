"""similarity_blocks: the torch backend (run here on torch's CPU) decides as numpy does."""

from __future__ import annotations

import numpy as np
import pytest

from operators.embedding.semantic_dedup import dedup_cluster
from operators.embedding.similarity_blocks import NumpyBlocks, TorchBlocks, similarity_blocks
from tests.support.embedding_vectors import clustered, with_near_copies

pytest.importorskip("torch")


@pytest.mark.parametrize("criterion", ["kept", "ranked"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("block", [3, 7, 64, 4096])  # one-row blocks: test_a_cluster_of_one_and_of_two
def test_torch_blocks_give_the_numpy_decisions(criterion: str, precision: str, block: int) -> None:
    x, _ = with_near_copies(clustered(150, 24, 2, 0.2, seed=3), 120, 0.02, seed=4)
    x = x[np.random.default_rng(block).permutation(len(x))]  # copies spread over the blocks
    cpu = dedup_cluster(x, 0.98, criterion, block, precision, NumpyBlocks(precision))
    torch_cpu = dedup_cluster(x, 0.98, criterion, block, precision, TorchBlocks(precision, device="cpu"))
    assert not cpu[0].all() and cpu[0].any()  # both decisions occur
    for k, (ours, theirs) in enumerate(zip(torch_cpu, cpu)):
        if precision == "float32" and k in (1, 2):  # float32 sums differ in the last bit by kernel
            np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        else:  # float64 products rounded to float32: exact; decisions: exact
            np.testing.assert_array_equal(ours, theirs)


def test_a_cluster_of_one_and_of_two() -> None:
    one = np.ones((1, 4), np.float32) / 2
    for blocks in (NumpyBlocks("float64"), TorchBlocks("float64", device="cpu")):
        keep, max_sim, prior, keeper, nearest = dedup_cluster(one, 0.9, "kept", 8, "float64", blocks)
        assert keep.tolist() == [True] and np.isnan(max_sim[0]) and np.isnan(prior[0])
        keep, *_ = dedup_cluster(np.vstack([one, one]), 0.9, "kept", 1, "float64", blocks)
        assert keep.tolist() == [True, False]


def test_cpu_unless_a_gpu_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(similarity_blocks("cpu", "float64"), NumpyBlocks)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert isinstance(similarity_blocks("auto", "float32"), NumpyBlocks)
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        similarity_blocks("cuda", "float64")
