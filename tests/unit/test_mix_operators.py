"""The mix's operators on Arrow tables: counts, plan and sample (operators/mixing/)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from operators.base import DROP_REASON, TAKE_COLUMN
from operators.mixing.config import EPOCH, NOT_SAMPLED, TOKENS, MixConfig
from operators.mixing.plan import HISTOGRAM_BITS, MixPlan, selection_hashes
from operators.mixing.sample import MixSample
from operators.mixing.tokens import MixTokens, tokenizer_counts


def corpus(sizes: dict[str, int], seed: int = 0) -> pa.Table:
    """Documents of several groups with token counts from 20 to 3,000 and a score."""
    rng = np.random.default_rng(seed)
    groups = [g for g, n in sizes.items() for _ in range(n)]
    n = len(groups)
    return pa.table({"id": [f"d{i}" for i in range(n)], "source": groups,
                     TOKENS: rng.integers(20, 3000, n), "score": rng.random(n)})


def mix(table: pa.Table, batch_rows: int = 700, **config: object) -> tuple[pa.Table, pa.Table, MixSample]:
    """(plan, sampled rows, the sampler) of ``table`` in batches of ``batch_rows``."""
    cfg = MixConfig(**{"budget_tokens": 1e6, **config})
    plan = MixPlan(cfg).fit(iter(table.to_batches(batch_rows)))
    sampler = MixSample(cfg, plan)
    out = pa.concat_tables([sampler(pa.Table.from_batches([b])) for b in table.to_batches(batch_rows)])
    return plan, out.drop_columns([TAKE_COLUMN]), sampler  # the take column indexes each batch


def test_each_row_names_the_input_row_it_copies_in_input_order() -> None:
    table = corpus({"a": 300, "b": 3000})  # a is repeated, b downsampled
    cfg = MixConfig(budget_tokens=1.5e6, max_epochs=8, policy="weights", weights={"a": 0.5, "b": 0.5})
    out = MixSample(cfg, MixPlan(cfg).fit(iter(table.to_batches(1000))))(table)
    take = out[TAKE_COLUMN].to_numpy()
    assert (np.diff(take) >= 0).all() and take.max() < table.num_rows
    assert out["id"].equals(table["id"].take(pa.array(take)))
    assert np.bincount(take, minlength=table.num_rows).max() > 1  # some rows copied


def realized(out: pa.Table) -> Counter[str]:
    kept = out.filter(pc.is_null(out[DROP_REASON]))
    tokens: Counter[str] = Counter()
    for g, t in zip(kept["source"].to_pylist(), kept[TOKENS].to_pylist()):
        tokens[g] += t
    return tokens


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1000, 2500), min_size=2, max_size=4), fraction=st.floats(0.05, 3.5),
       policy=st.sampled_from(["proportional", "temperature", "unimax"]), seed=st.integers(0, 2**32))
def test_realized_tokens_follow_the_plan(sizes: list[int], fraction: float, policy: str, seed: int) -> None:
    table = corpus({f"g{i}": n for i, n in enumerate(sizes)}, seed % 1000)
    budget = fraction * pc.sum(table[TOKENS]).as_py()
    plan, out, sampler = mix(table, budget_tokens=budget, policy=policy, temperature=2.0, seed=seed,
                             allow_short=True)
    got = realized(out)
    u = selection_hashes(table["id"], seed)
    for row in plan.to_pylist():
        g, target = row["group"], row["target_tokens"]
        # the documented bound: off by at most the tokens in the hash range the cut falls in
        mine = np.asarray(table["source"].to_pylist()) == g
        boundary = mine & ((u >> np.uint64(64 - HISTOGRAM_BITS)) == np.uint64(row["hash_cut"] >> (64 - HISTOGRAM_BITS)))
        slack = table[TOKENS].to_numpy()[boundary].sum()
        assert abs(got[g] - target) <= slack + 1e-6, (g, got[g], target, slack)
        if fraction >= 0.5:  # some hundreds of documents per group: one document is under 1 % of a share
            assert abs(got[g] / sum(got.values()) - target / plan["target_tokens"].to_numpy().sum()) < 0.01
        assert sampler.metrics()[f"group.{g}.tokens_out"] == got[g]
    # every document once (rejected) or 1..ceil(epochs) times, max_epochs (4) at most
    copies = Counter(out.filter(pc.is_null(out[DROP_REASON]))["id"].to_pylist())
    assert max(copies.values(), default=0) <= 4
    assert set(out["id"].to_pylist()) == set(table["id"].to_pylist())


def test_same_seed_same_rows_whatever_the_batches_another_seed_other_rows() -> None:
    table = corpus({"a": 3000, "b": 1000})
    _, first, _ = mix(table, batch_rows=700, budget_tokens=2e6, seed=7)
    _, again, _ = mix(table, batch_rows=1234, budget_tokens=2e6, seed=7)
    _, other, _ = mix(table, batch_rows=700, budget_tokens=2e6, seed=8)
    assert first.equals(again)
    assert first.filter(pc.is_null(first[DROP_REASON]))["id"] != other.filter(pc.is_null(other[DROP_REASON]))["id"]


def test_repeats_carry_their_epoch_and_rejected_rows_their_reason() -> None:
    table = corpus({"small": 1000, "big": 4000})
    plan, out, _ = mix(table, policy="unimax", budget_tokens=1.6 * pc.sum(table[TOKENS]).as_py(), max_epochs=3)
    rows = {r["group"]: r for r in plan.to_pylist()}
    assert rows["small"]["whole_epochs"] >= 1 and rows["small"]["capped"]
    small = out.filter(pc.equal(out["source"], "small"))
    epochs = Counter(small[EPOCH].to_pylist())
    assert set(epochs) <= {0, 1, 2} and epochs[0] == 1000  # every small document at least once
    for doc_id, n in Counter(small["id"].to_pylist()).items():
        assert sorted(small.filter(pc.equal(small["id"], doc_id))[EPOCH].to_pylist()) == list(range(n))
    big = out.filter(pc.equal(out["source"], "big"))
    assert big[DROP_REASON].null_count == big.num_rows  # 1.25 epochs: everything once, a quarter twice
    twice = sum(1 for n in Counter(big["id"].to_pylist()).values() if n == 2)
    assert Counter(big[EPOCH].to_pylist()) == {0: 4000, 1: twice} and 0 < twice < 4000


def test_top_score_takes_the_best_documents_of_each_group() -> None:
    table = corpus({"a": 1500, "b": 800})
    _, out, _ = mix(table, within_group="top_score", score_column="score", budget_tokens=1e6)
    for g in ("a", "b"):
        mine = out.filter(pc.equal(out["source"], g))
        kept = mine.filter(pc.is_null(mine[DROP_REASON]))["score"].to_numpy()
        dropped = mine.filter(pc.is_valid(mine[DROP_REASON]))["score"].to_numpy()
        assert len(kept) and len(dropped) and kept.min() > dropped.max()


@pytest.mark.parametrize("unscored", [0.6, 1.0])
def test_top_score_fills_with_unscored_documents_where_the_scored_fall_short(unscored: float) -> None:
    table = corpus({"a": 2000}, seed=3)
    rng = np.random.default_rng(4)
    missing = rng.random(table.num_rows) < unscored
    table = table.set_column(table.schema.get_field_index("score"), "score",
                             pa.array(table["score"].to_numpy(), mask=missing))
    budget = 0.7 * float(pc.sum(table[TOKENS]).as_py())  # more than the scored documents hold
    plan, out, _ = mix(table, within_group="top_score", score_column="score", budget_tokens=budget)
    assert plan["score_cut"].to_pylist() == [float("-inf")]
    kept = out.filter(pc.is_null(out[DROP_REASON]))
    assert realized(out)["a"] == pytest.approx(budget, rel=0.05)  # was: only the scored ones, silently short
    assert kept["score"].null_count < kept.num_rows or unscored == 1.0
    assert kept["score"].drop_null().to_numpy().size == int((~missing).sum())  # every scored one is in


def test_weights_leave_unweighted_groups_out() -> None:
    table = corpus({"web": 1000, "code": 1000, "spam": 1000})
    plan, out, _ = mix(table, policy="weights", weights={"web": 3, "code": 1}, budget_tokens=1e6)
    got = realized(out)
    assert "spam" not in got and got["web"] / got["code"] == pytest.approx(3, rel=0.02)
    assert {r["group"]: r["target_tokens"] for r in plan.to_pylist()}["spam"] == 0
    spam = out.filter(pc.equal(out["source"], "spam"))
    assert spam.num_rows == 1000 and set(spam[DROP_REASON].to_pylist()) == {NOT_SAMPLED}
    assert spam[EPOCH].null_count == 1000


def test_token_estimates_and_a_tokenizer(tmp_path: Path) -> None:
    table = pa.table({"text": ["four score and seven", "", None, "é" * 10]})
    counts = MixTokens(MixConfig(budget_tokens=1))(table)[TOKENS].to_pylist()
    assert counts == [5, 0, 0, 5]  # ceil(bytes / 4); é is 2 bytes
    words = MixTokens(MixConfig(budget_tokens=1, tokens={"estimate": "words_per_token", "value": 0.75}))(table)
    assert words[TOKENS].to_pylist() == [6, 0, 0, 2]
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"four": 0, "score": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    config = MixConfig(budget_tokens=1, tokens={"tokenizer": str(path)})
    assert MixTokens(config)(table)[TOKENS].to_pylist() == [4, 0, 0, 1]
    assert tokenizer_counts(["four four"], str(path)).tolist() == [2]
    path.write_text(json.dumps({**json.loads(path.read_text()), "added_tokens": []}))
    changed = MixConfig(budget_tokens=1, tokens={"tokenizer": str(path)})
    assert changed.tokens.tokenizer_sha256 != config.tokens.tokenizer_sha256  # a changed file recounts


@pytest.mark.parametrize("config, message", [
    ({"weights": {"a": -1.0, "b": 2.0}, "policy": "weights"}, "weights of a: expected numbers >= 0"),
    ({"weights": {"a": 0.0}, "policy": "weights"}, "the weights sum to 0"),
    ({"policy": "weights"}, "policy weights needs weights"),
    ({"weights": {"a": 1.0}}, "set policy: weights"),
    ({"within_group": "top_score"}, "top_score needs score_column"),
    ({"tokens": {"tokenizer": "/no/such/tokenizer.json"}}, "no such file"),
    ({"budget_tokens": 0}, "greater than 0"),
])
def test_bad_configs_are_clear_errors(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MixConfig(**{"budget_tokens": 1e6, **config})


def test_groups_may_be_an_expression_over_columns() -> None:
    table = corpus({"a": 1200, "b": 1200})
    plan, out, _ = mix(table, group_by="floor(score * 4)", policy="unimax", budget_tokens=1e6)
    assert [r["group"] for r in plan.to_pylist()] == ["0", "1", "2", "3"]
    assert MixPlan.columns_read(MixConfig(budget_tokens=1, group_by="floor(score * 4)")) == ("id", "score", TOKENS)
    with pytest.raises(ValidationError, match="group_by"):
        MixConfig(budget_tokens=1, group_by="score *")


def test_weights_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text('{"web": 0.7, "code": 0.3}')
    (tmp_path / "w.yaml").write_text("web: 7\ncode: 3\n")
    for name in ("w.json", "w.yaml"):
        config = MixConfig(budget_tokens=1, policy="weights", weights_file=str(tmp_path / name))
        assert config.weights is not None and config.weights["web"] / config.weights["code"] == pytest.approx(7 / 3)
    (tmp_path / "bad.yaml").write_text("- web\n- code\n")
    for weights_file, message in ((str(tmp_path / "none.json"), "No such file"),
                                  (str(tmp_path / "bad.yaml"), "expected a mapping of group to number")):
        with pytest.raises(ValidationError, match=message):
            MixConfig(budget_tokens=1, policy="weights", weights_file=weights_file)
    with pytest.raises(ValidationError, match="weights or weights_file, not both"):
        MixConfig(budget_tokens=1, policy="weights", weights={"a": 1}, weights_file=str(tmp_path / "w.json"))


def test_phases_plan_and_sample_each_on_their_own() -> None:
    table = corpus({"web": 2000, "code": 1500, "books": 1000})
    total = pc.sum(table[TOKENS]).as_py()
    plan, out, sampler = mix(table, budget_tokens=None, policy="weights", weights={"web": 6, "code": 3, "books": 1},
                             phases=[{"name": "main", "budget_tokens": 0.5 * total},
                                     {"name": "anneal", "budget_tokens": 0.1 * total,
                                      "weights": {"books": 0.7, "code": 0.3}, "within_group": "top_score",
                                      "score_column": "score"}])
    assert set(zip(plan["phase"].to_pylist(), plan["group"].to_pylist())) == {
        (p, g) for p in ("main", "anneal") for g in ("web", "code", "books")}
    kept = out.filter(pc.is_null(out[DROP_REASON]))
    tokens: Counter[tuple[str, str]] = Counter()
    for p, g, t in zip(kept["mix_phase"].to_pylist(), kept["source"].to_pylist(), kept[TOKENS].to_pylist()):
        tokens[(p, g)] += t
    longest = pc.max(table[TOKENS]).as_py()
    for row in plan.to_pylist():
        assert abs(tokens[(row["phase"], row["group"])] - row["target_tokens"]) <= 2 * longest, row
        assert sampler.metrics().get(f"group.{row['phase']}:{row['group']}.tokens_out", 0) == \
            tokens[(row["phase"], row["group"])]
    assert tokens[("anneal", "web")] == 0
    anneal_books = kept.filter(pc.and_(pc.equal(kept["mix_phase"], "anneal"), pc.equal(kept["source"], "books")))
    books = table.filter(pc.equal(table["source"], "books"))
    assert pc.min(anneal_books["score"]).as_py() > pc.quantile(books["score"], 0.3)[0].as_py()
    # a document taken by no phase is one rejected row; one taken is never rejected
    rejected = set(out.filter(pc.is_valid(out[DROP_REASON]))["id"].to_pylist())
    assert rejected.isdisjoint(kept["id"].to_pylist())
    assert rejected | set(kept["id"].to_pylist()) == set(table["id"].to_pylist())
    assert out[EPOCH].null_count == len(rejected)


@pytest.mark.parametrize("phases, message", [
    ([{"name": "a", "budget_tokens": 1}, {"name": "a", "budget_tokens": 1}], "phase names repeat"),
    ([{"name": "a", "budget_tokens": 1}], "sum to 1 tokens, not budget_tokens 5"),
    ([{"name": "a", "budget_tokens": 5, "within_group": "top_score"}], "phase a: .*needs score_column"),
    ([{"name": "a b", "budget_tokens": 5}], "should match pattern"),
])
def test_bad_phases_are_clear_errors(phases: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MixConfig(budget_tokens=5 if "sum" in message or "a:" in message or "pattern" in message else None,
                  phases=phases)
