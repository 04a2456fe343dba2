"""The ``mix`` config: how tokens are counted, the budget, the policy and how documents are chosen."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from operators.base import OperatorConfig
from operators.filtering.expression import parse_expression
from operators.mixing.policy import POLICIES

TOKENS = "mix_tokens"
EPOCH = "mix_epoch"
ORDER = "mix_order"
NOT_SAMPLED = "mix:not_sampled"


class TokenCountConfig(OperatorConfig):
    """How ``mix_tokens`` is counted: an estimate from the text's size, or a tokenizer."""

    estimate: Literal["bytes_per_token", "words_per_token"] = Field(
        "bytes_per_token", description="bytes_per_token: ceil(UTF-8 bytes / value); words_per_token: "
        "ceil(whitespace-separated words / value). Ignored with a tokenizer.")
    value: float = Field(4.0, gt=0, description="Bytes (or words) per token: about 4 bytes for English "
                         "with a GPT-2-style BPE, 0.75 words.")
    tokenizer: str | None = Field(None, description="A Hugging Face tokenizer.json (local path, readable "
                                  "by the workers): exact counts, without special tokens.")
    tokenizer_sha256: str | None = Field(None, description="Filled in from the file, so that a changed "
                                         "tokenizer recounts.")

    @model_validator(mode="before")
    @classmethod
    def _hash_tokenizer(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("tokenizer"):
            path = Path(str(data["tokenizer"])).expanduser()
            if not path.is_file():
                raise ValueError(f"tokenizer {data['tokenizer']!r}: no such file (a tokenizer.json is expected)")
            # absolute: workers need not share the driver's working directory
            data = {**data, "tokenizer": str(path.resolve()),
                    "tokenizer_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        return data


class MixConfig(OperatorConfig):
    group_by: str = Field("source", description="The groups: a column (source, a domain, cluster_id after "
                          "kmeans) or an expression over columns, e.g. floor(quality_text_score_rank * 10).")
    tokens: TokenCountConfig = Field(default_factory=TokenCountConfig, description="How mix_tokens is counted: "
                                     "{estimate, value} or {tokenizer: path/to/tokenizer.json}.")
    budget_tokens: float = Field(gt=0, description="Tokens in the mix.")
    policy: Literal["weights", "proportional", "temperature", "unimax"] = Field(
        "proportional", description=f"One of {', '.join(POLICIES)}; see docs/operators.md for the formulas.")
    weights: dict[str, float] | None = Field(None, description="Group -> weight (for policy weights); "
                                             "normalized; a group present but not named gets none.")
    weights_file: str | None = Field(None, description="A JSON or YAML file of {group: weight} (e.g. DoReMi's "
                                     "domain weights), read when the config is validated, instead of weights.")
    temperature: float = Field(1.0, gt=0, description="T of p_i ∝ n_i^(1/T) (policy temperature).")
    max_epochs: float | None = Field(4.0, gt=0, description="Most times a group's tokens are used; null: "
                                     "no cap.")
    allow_short: bool = Field(False, description="When the capped groups cannot fill the budget: mix what "
                              "there is instead of failing.")
    within_group: Literal["random", "top_score"] = Field(
        "random", description="Which documents a group's sampling rate keeps: a hash of (id, seed), or the "
        "highest score_column first.")
    score_column: str | None = Field(None, description="The score read by within_group: top_score.")
    seed: int = Field(0, description="Seed of the selection hash: another seed, another sample.")
    shuffle: bool = Field(True, description="Shuffle the mix across groups (mix.shuffle), so that a trainer "
                          "reading the output shards in order sees the mix, not one group after another.")
    score_sample: int = Field(20_000, ge=100, le=10_000_000, description="Documents per group (bottom-k by "
                              "id hash) the top_score cut is estimated from.")

    @model_validator(mode="before")
    @classmethod
    def _read_weights_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("weights_file"):
            return data
        if data.get("weights"):
            raise ValueError("give weights or weights_file, not both")
        path = Path(str(data["weights_file"])).expanduser()
        try:
            weights = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ValueError(f"weights_file {data['weights_file']!r}: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            raise ValueError(f"weights_file {data['weights_file']!r}: not JSON or YAML ({err})") from None
        if not isinstance(weights, dict) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                    for w in weights.values()):
            raise ValueError(f"weights_file {data['weights_file']!r}: expected a mapping of group to number")
        # the weights themselves enter the fingerprint: a changed file re-plans
        return {**data, "weights_file": str(path.resolve()), "weights": {str(g): float(w) for g, w in weights.items()}}

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, group_by: str) -> str:
        parse_expression(group_by)  # an ExpressionError (a ValueError) names what is wrong
        return group_by

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        if weights is None:
            return None
        bad = [g for g, w in weights.items() if not math.isfinite(w) or w < 0]
        if bad:
            raise ValueError(f"weights of {', '.join(bad)}: expected numbers >= 0")
        if not sum(weights.values()) > 0:
            raise ValueError("the weights sum to 0: give at least one group a positive weight")
        return weights

    @model_validator(mode="after")
    def _consistent(self) -> "MixConfig":
        if self.policy == "weights" and not self.weights:
            raise ValueError("policy weights needs weights: {group: weight, ...}")
        if self.policy != "weights" and self.weights:
            raise ValueError(f"weights are given but policy is {self.policy}; set policy: weights")
        if self.within_group == "top_score" and not self.score_column:
            raise ValueError("within_group top_score needs score_column")
        return self
