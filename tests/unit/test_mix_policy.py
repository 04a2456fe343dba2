"""Properties of the mix policies, the epoch cap and its redistribution (operators/mixing/policy.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.mixing.policy import MixPlanError, plan_targets, policy_shares

sizes = st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), st.floats(1.0, 1e9), min_size=1, max_size=8)
policies = st.sampled_from(["proportional", "temperature", "unimax", "weights"])


def shares_for(available: dict[str, float], policy: str, data: st.DataObject) -> dict[str, float]:
    weights = None
    if policy == "weights":
        weights = {g: data.draw(st.floats(0.0, 10.0)) for g in available}
        if sum(weights.values()) <= 0:
            weights[next(iter(available))] = 1.0
    return policy_shares(available, policy, weights, data.draw(st.floats(0.25, 8.0)))


@settings(max_examples=300, deadline=None)
@given(available=sizes, policy=policies, data=st.data(), epochs=st.one_of(st.none(), st.floats(0.5, 8.0)),
       fraction=st.floats(0.01, 1.5))
def test_targets_meet_the_budget_under_the_cap(available: dict[str, float], policy: str, data: st.DataObject,
                                               epochs: float | None, fraction: float) -> None:
    shares = shares_for(available, policy, data)
    assert math.isclose(sum(shares.values()), 1.0, rel_tol=1e-9)
    weighted = [g for g in available if shares[g] > 0]
    cap = {g: math.inf if epochs is None else epochs * available[g] for g in available}
    budget = fraction * sum(cap[g] if epochs is not None else available[g] for g in weighted)
    try:
        plan = plan_targets(available, shares, budget, epochs)
    except MixPlanError:
        assert sum(cap[g] for g in weighted) < budget * (1 + 1e-9)
        short = plan_targets(available, shares, budget, epochs, allow_short=True)
        assert all(t.target == pytest.approx(cap[g]) for g, t in short.items() if shares[g] > 0)
        return
    assert sum(t.target for t in plan.values()) == pytest.approx(budget, rel=1e-6)
    for g, t in plan.items():
        assert t.target <= cap[g] * (1 + 1e-9)  # no group above max_epochs, capped or not
        if shares[g] == 0:
            assert t.target == 0
        elif t.capped:
            assert t.target == pytest.approx(cap[g])
        else:  # redistribution only ever adds to an uncapped group's first share
            assert t.target >= shares[g] * budget * (1 - 1e-9)
    # uncapped groups keep their shares' proportions
    ratios = [t.target / shares[g] for g, t in plan.items() if shares[g] > 0 and not t.capped]
    assert all(r == pytest.approx(ratios[0], rel=1e-6) for r in ratios)
    if policy == "unimax":  # uniform, with capped groups below the others
        top = max((t.target for t in plan.values() if not t.capped), default=math.inf)
        assert all(t.target <= top * (1 + 1e-9) for t in plan.values())


def test_temperature_one_is_proportional_and_a_high_one_nearly_uniform() -> None:
    available = {"web": 900.0, "code": 90.0, "books": 10.0}
    assert policy_shares(available, "temperature", temperature=1.0) == pytest.approx(
        policy_shares(available, "proportional"))
    flat = policy_shares(available, "temperature", temperature=1000.0)
    assert all(s == pytest.approx(1 / 3, abs=0.01) for s in flat.values())
    # p_i ∝ n_i^(1/T): the mT5 convention, T = 2 -> square roots
    half = policy_shares(available, "temperature", temperature=2.0)
    assert half["web"] / half["books"] == pytest.approx(math.sqrt(90))


def test_unimax_fills_small_groups_to_their_cap_first() -> None:
    # Chung et al. 2023: a uniform budget, with small groups capped at max_epochs
    available = {"small": 10.0, "mid": 100.0, "big": 1000.0}
    plan = plan_targets(available, policy_shares(available, "unimax"), budget=600.0, max_epochs=4)
    assert plan["small"].target == 40.0 and plan["small"].capped
    assert plan["mid"].target == pytest.approx(280.0) and plan["big"].target == pytest.approx(280.0)


def test_weights_redistribute_a_capped_groups_shortfall_by_weight() -> None:
    available = {"web": 1000.0, "code": 100.0, "books": 50.0}
    shares = policy_shares(available, "weights", {"web": 0.5, "code": 0.3, "books": 0.2})
    plan = plan_targets(available, shares, budget=1000.0, max_epochs=2)
    assert plan["books"].target == 100.0 and plan["books"].capped  # wanted 200
    assert plan["code"].target == 200.0 and plan["code"].capped  # wanted 300, then more
    assert plan["web"].target == pytest.approx(700.0) and not plan["web"].capped


def test_a_budget_the_corpus_cannot_give_lists_what_each_group_can() -> None:
    available = {"web": 1000.0, "code": 100.0}
    with pytest.raises(MixPlanError) as caught:
        plan_targets(available, policy_shares(available, "proportional"), budget=10_000, max_epochs=4)
    message = str(caught.value)
    assert "at most 4,400" in message and "allow_short" in message
    assert "web" in message and "4,000" in message and "code" in message and "400" in message


def test_weights_naming_groups_the_data_lacks_are_an_error_naming_them() -> None:
    with pytest.raises(MixPlanError, match="weights name group.* the data does not have: bookz"):
        policy_shares({"books": 1.0, "web": 2.0}, "weights", {"bookz": 1.0, "web": 1.0})
    with pytest.raises(MixPlanError, match="no group present a positive share"):
        policy_shares({"books": 1.0, "web": 2.0}, "weights", {"books": 0.0})
