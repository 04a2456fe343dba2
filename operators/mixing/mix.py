"""``mix``: a token-budget mix of groups (sources, domains, clusters, quality buckets).

A composite of three parts, each checkpointed on its own:

1. ``mix.tokens`` (map): ``mix_tokens`` per document (estimate or tokenizer);
2. ``mix.plan`` (fit): per-group targets under the policy, budget and epoch cap, and the
   cut that selects each group's documents (:mod:`operators.mixing.policy`, ``.plan``);
3. ``mix.sample`` (map): each document 0, 1 or more times, with ``mix_epoch``;
4. ``mix.shuffle`` (group, unless ``shuffle: false``): the mix in a random order across
   groups.

Changing a weight, the budget, the policy or the seed re-runs the plan and the sample and
reuses the counts; changing how tokens are counted re-runs all three.
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.base import Composite, Part
from operators.mixing.config import MixConfig
from operators.mixing.plan import MixPlan
from operators.mixing.sample import MixSample
from operators.mixing.shuffle import MixShuffle
from operators.mixing.tokens import MixTokens
from operators.registry import register

PLAN_FIELDS = ("group_by", "budget_tokens", "policy", "weights", "temperature", "max_epochs", "allow_short",
               "within_group", "score_column", "seed", "score_sample", "phases")
SAMPLE_FIELDS = ("group_by", "within_group", "score_column", "seed", "phases")


@register("mix")
class Mix(Composite[MixConfig]):
    """Mix groups to a token budget: count tokens, plan per group, sample (with repeats)."""

    Config = MixConfig

    @classmethod
    def parts(cls, config: MixConfig) -> Sequence[Part]:
        # tokens.tokenizer: the file's SHA-256 once jobs/ has staged it (jobs/models.py), not its path
        parts = [Part("tokens", MixTokens, config, ("tokens.estimate", "tokens.value", "tokens.tokenizer")),
                 Part("plan", MixPlan, config, PLAN_FIELDS),
                 Part("sample", MixSample, config, SAMPLE_FIELDS)]
        if config.shuffle:
            parts.append(Part("shuffle", MixShuffle, config, ()))
        return parts
