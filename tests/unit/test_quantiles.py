"""quantiles: deterministic bottom-k samples per group and percentile-rank columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from operators.filtering.filter import Filter, FilterConfig
from operators.filtering.quantiles import QuantileRank, Quantiles, QuantileSamples, QuantilesConfig


def docs(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"id": [f"d{i}" for i in range(n)], "source": ["a" if i % 3 else "b" for i in range(n)],
                     "score": rng.random(n)})


def fit_rank(table: pa.Table, batches: int = 1, **config: object) -> pa.Table:
    cfg = QuantilesConfig(columns=["score"], **config)
    size = -(-table.num_rows // batches)
    artifact = QuantileSamples(cfg).fit(iter([table.slice(i, size) for i in range(0, table.num_rows, size)]))
    return QuantileRank(cfg, artifact=artifact)(table)


def test_small_groups_rank_exactly() -> None:
    table = pa.table({"id": ["a", "b", "c", "d"], "source": ["s"] * 4, "score": [0.1, 0.4, None, 0.9]})
    out = fit_rank(table, by="source")
    assert out["score_rank"].to_pylist() == [pytest.approx(1 / 3), pytest.approx(2 / 3), None, 1.0]


def test_ranks_are_per_group() -> None:
    table = pa.table({"id": ["1", "2", "3", "4"], "source": ["x", "x", "y", "y"], "score": [1.0, 2.0, 10.0, 20.0]})
    assert fit_rank(table, by="source")["score_rank"].to_pylist() == [0.5, 1.0, 0.5, 1.0]
    assert fit_rank(table)["score_rank"].to_pylist() == [0.25, 0.5, 0.75, 1.0]


def test_sampled_ranks_are_close_and_independent_of_batching() -> None:
    table = docs(30_000)
    one = fit_rank(table, batches=1, by="source", sample_size=2000)
    many = fit_rank(table.take(np.random.default_rng(1).permutation(30_000)), batches=7, by="source",
                    sample_size=2000)
    by_id = dict(zip(many["id"].to_pylist(), many["score_rank"].to_pylist()))
    assert one["score_rank"].to_pylist() == [by_id[i] for i in one["id"].to_pylist()]
    # uniform scores: the rank estimates the score itself, error about sqrt(p(1-p)/k) < 0.012
    error = np.abs(np.array(one["score_rank"].to_pylist()) - table["score"].to_numpy())
    assert error.max() < 0.05


def test_top_decile_filter_keeps_about_ten_percent_per_source() -> None:
    ranked = fit_rank(docs(20_000), by="source", sample_size=5000)
    kept = Filter(FilterConfig(expr="score_rank > 0.9"))(ranked).filter(pa.compute.is_null(pa.compute.field("drop_reason")))
    for source in ("a", "b"):
        share = kept.filter(pa.compute.equal(kept["source"], source)).num_rows / \
            ranked.filter(pa.compute.equal(ranked["source"], source)).num_rows
        assert 0.08 < share < 0.12


def test_non_numeric_column_is_a_clear_error() -> None:
    table = pa.table({"id": ["a"], "score": ["high"]})
    with pytest.raises(TypeError, match="not numeric"):
        QuantileSamples(QuantilesConfig(columns=["score"])).fit(iter([table]))


def test_config_and_parts() -> None:
    with pytest.raises(ValidationError):
        QuantilesConfig(columns=[])
    assert [p.suffix for p in Quantiles.parts(QuantilesConfig(columns=["score"]))] == ["fit", "rank"]
    assert QuantileSamples.columns_read(QuantilesConfig(columns=["score"], by="source")) == ("id", "score", "source")
