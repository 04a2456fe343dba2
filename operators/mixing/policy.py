"""How many tokens each group gives to a mix: the policies, the epoch cap and its redistribution.

Given each group's available tokens ``n_i`` and a budget ``B``, a policy first gives every
group a share ``p_i`` (summing to 1):

- ``weights``: the user's weights, normalized (the DoReMi / Megatron ``--data-path W1 P1 ...``
  convention: a weight is a share of the mix, not of the group);
- ``proportional``: ``p_i ∝ n_i``, the natural distribution;
- ``temperature``: ``p_i ∝ n_i^(1/T)`` (mT5, Xue et al. 2021; XLM-R, Conneau et al. 2020):
  ``T = 1`` is proportional, larger ``T`` flattens toward uniform;
- ``unimax``: uniform over groups (Chung et al. 2023, "UniMax", ICLR), filled smallest group
  first so that a group capped by ``max_epochs`` passes what it cannot take to the others.

The target is then ``t_i = p_i B``, capped at ``max_epochs x n_i`` (repeating a group more
than about four times buys little: Muennighoff et al. 2023, "Scaling Data-Constrained
Language Models"). The tokens a capped group cannot give go to the uncapped groups in
proportion to their shares, again and again until no group is over its cap (water-filling;
for ``unimax`` the shares are equal, which is UniMax's own procedure). A capped group never
gets more than its cap; an uncapped one never less than its first share. If every group is
capped before the budget is met, the mix is short: an error listing what each group can
give, or, with ``allow_short``, the capped plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

POLICIES = ("weights", "proportional", "temperature", "unimax")


class MixPlanError(ValueError):
    """The budget cannot be met, or the weights do not fit the groups present."""


@dataclass(frozen=True)
class GroupTarget:
    """One group's part of the plan.

    Attributes:
        available: Tokens the group has.
        share: The policy's share before capping (0 for a group left out).
        target: Tokens it gives to the mix (``available x epochs``).
        capped: Whether ``max_epochs`` limited it.
    """

    available: float
    share: float
    target: float
    capped: bool

    @property
    def epochs(self) -> float:
        """How many times, on average, each of its tokens is used (the sampling rate)."""
        return self.target / self.available if self.available > 0 else 0.0


def policy_shares(available: Mapping[str, float], policy: str, weights: Mapping[str, float] | None = None,
                  temperature: float = 1.0) -> dict[str, float]:
    """Each group's share of the mix under ``policy``, summing to 1 over groups with a share."""
    if policy not in POLICIES:
        raise ValueError(f"policy {policy!r}: expected one of {', '.join(POLICIES)}")
    present = {g: n for g, n in available.items() if n > 0}
    if not present:
        raise MixPlanError("no group has any tokens to mix")
    if policy == "weights":
        if not weights:
            raise MixPlanError("policy weights needs weights")
        unknown = sorted(set(weights) - set(available))
        if unknown:
            raise MixPlanError(f"weights name group(s) the data does not have: {', '.join(unknown)} "
                               f"(groups present: {', '.join(sorted(available)) or 'none'})")
        raw = {g: float(weights.get(g, 0.0)) for g in present}
    elif policy == "proportional":
        raw = dict(present)
    elif policy == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature {temperature}: expected a positive number")
        # in log space: n ** (1/T) overflows nothing, and the largest group's share is exact
        logs = {g: math.log(n) / temperature for g, n in present.items()}
        top = max(logs.values())
        raw = {g: math.exp(v - top) for g, v in logs.items()}
    else:
        raw = {g: 1.0 for g in present}
    total = sum(raw.values())
    if total <= 0:
        raise MixPlanError(f"the weights give no group present a positive share (groups: {', '.join(sorted(present))})")
    return {g: raw.get(g, 0.0) / total for g in available}


def plan_targets(available: Mapping[str, float], shares: Mapping[str, float], budget: float,
                 max_epochs: float | None, allow_short: bool = False) -> dict[str, GroupTarget]:
    """Targets for ``budget`` tokens from ``shares``, capped at ``max_epochs`` and redistributed.

    Raises:
        MixPlanError: The capped groups cannot give ``budget`` tokens and not ``allow_short``.
    """
    if budget <= 0:
        raise ValueError(f"budget {budget}: expected a positive number of tokens")
    cap = {g: (math.inf if max_epochs is None else max_epochs * n) for g, n in available.items()}
    target = {g: 0.0 for g in available}
    open_ = {g for g, s in shares.items() if s > 0 and available.get(g, 0) > 0}
    capped: set[str] = set()
    left = budget
    while open_ and left > budget * 1e-12:
        weight = sum(shares[g] for g in open_)
        step = {g: left * shares[g] / weight for g in open_}
        over = {g for g in open_ if target[g] + step[g] >= cap[g]}
        if not over:
            for g in open_:
                target[g] += step[g]
            left = 0.0
            break
        # cap every group that this round would push over, then hand the rest out again
        for g in over:
            left -= cap[g] - target[g]
            target[g] = cap[g]
        capped |= over
        open_ -= over
    if left > budget * 1e-9 and not allow_short:
        raise MixPlanError(short_message(available, cap, budget))
    return {g: GroupTarget(available=float(available[g]), share=float(shares.get(g, 0.0)), target=target[g],
                           capped=g in capped) for g in available}


def short_message(available: Mapping[str, float], cap: Mapping[str, float], budget: float) -> str:
    """Why a budget cannot be met: what each group can give at most."""
    can = sum(c for c in cap.values() if math.isfinite(c))
    lines = [f"the budget of {budget:,.0f} tokens cannot be met: at most {can:,.0f} with the epoch cap "
             "(set allow_short: true to mix what there is, or raise max_epochs)",
             f"{'group':<24} {'available':>16} {'at most':>16}"]
    lines += [f"{g or '(null)':<24} {available[g]:>16,.0f} {cap[g]:>16,.0f}" for g in sorted(available)]
    return "\n".join(lines)
