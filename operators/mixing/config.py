"""The ``mix`` config: how tokens are counted, the budget, the policy and how documents are chosen."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from operators.config_files import is_uri, read_config_file
from operators.base import OperatorConfig
from operators.filtering.expression import parse_expression
from operators.mixing.policy import POLICIES

TOKENS = "mix_tokens"
EPOCH = "mix_epoch"
ORDER = "mix_order"
PHASE = "mix_phase"
NOT_SAMPLED = "mix:not_sampled"


class TokenCountConfig(OperatorConfig):
    """How ``mix_tokens`` is counted: an estimate from the text's size, or a tokenizer."""

    estimate: Literal["bytes_per_token", "words_per_token"] = Field(
        "bytes_per_token", description="bytes_per_token: ceil(UTF-8 bytes / value); words_per_token: "
        "ceil(whitespace-separated words / value). Ignored with a tokenizer.")
    value: float = Field(4.0, gt=0, description="Bytes (or words) per token: about 4 bytes for English "
                         "with a GPT-2-style BPE, 0.75 words.")
    tokenizer: str | None = Field(None, description="A Hugging Face tokenizer.json (local path or s3:// URI; "
                                  "copied into the store when the run starts, so workers need not see it): "
                                  "exact counts, without special tokens.")
    tokenizer_sha256: str | None = Field(None, description="Filled in from a local file, so that a changed "
                                         "tokenizer recounts (an s3:// one is hashed when the run starts).")

    @model_validator(mode="before")
    @classmethod
    def _hash_tokenizer(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("tokenizer") and not str(data["tokenizer"]).startswith("s3://"):
            path = Path(str(data["tokenizer"])).expanduser()
            if not path.is_file():
                raise ValueError(f"tokenizer {data['tokenizer']!r}: no such file (a tokenizer.json is expected)")
            # absolute: workers need not share the driver's working directory
            data = {**data, "tokenizer": str(path.resolve()),
                    "tokenizer_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        return data


def read_weights_file(data: Any) -> Any:
    """``data`` with ``weights`` read from its ``weights_file`` (JSON or YAML {group: weight});
    the weights themselves, not the path, then enter the fingerprint."""
    if not isinstance(data, dict) or not data.get("weights_file"):
        return data
    if data.get("weights"):
        raise ValueError("give weights or weights_file, not both")
    where = str(data["weights_file"])
    try:
        weights = yaml.safe_load(read_config_file(where).decode("utf-8"))
    except OSError as err:
        raise ValueError(f"weights_file {where!r}: {err.strerror or err}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"weights_file {where!r}: not JSON or YAML ({err})") from None
    if not isinstance(weights, dict) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                for w in weights.values()):
        raise ValueError(f"weights_file {where!r}: expected a mapping of group to number")
    # a local path made absolute (for the record: the weights, not the path, are fingerprinted)
    where = where if is_uri(where) else str(Path(where).expanduser().resolve())
    return {**data, "weights_file": where, "weights": {str(g): float(w) for g, w in weights.items()}}


class PhaseConfig(OperatorConfig):
    """One phase of a staged mix: its own budget, and whatever it changes of the mix's config."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="The phase's name: its mix_phase value and "
                      "output folder (mix_phase=<name>/ with output.split_by: mix_phase).")
    budget_tokens: float = Field(gt=0, description="Tokens in this phase.")
    policy: Literal["weights", "proportional", "temperature", "unimax"] | None = Field(
        None, description="The phase's policy; null: the mix's.")
    weights: dict[str, float] | None = Field(None, description="The phase's weights; null: the mix's.")
    weights_file: str | None = Field(None, description="The phase's weights from a file; null: the mix's.")
    temperature: float | None = Field(None, gt=0, description="The phase's temperature; null: the mix's.")
    max_epochs: float | None = Field(None, gt=0, description="The phase's epoch cap; null: the mix's.")
    allow_short: bool | None = Field(None, description="The phase's allow_short; null: the mix's.")
    within_group: Literal["random", "top_score"] | None = Field(None, description="The phase's selection; "
                                                                "null: the mix's.")
    score_column: str | None = Field(None, description="The phase's score column; null: the mix's.")

    @model_validator(mode="before")
    @classmethod
    def _read_weights_file(cls, data: Any) -> Any:
        return read_weights_file(data)


class MixConfig(OperatorConfig):
    group_by: str = Field("source", description="The groups: a column (source, a domain, cluster_id after "
                          "kmeans) or an expression over columns, e.g. floor(quality_text_score_rank * 10).")
    tokens: TokenCountConfig = Field(default_factory=TokenCountConfig, description="How mix_tokens is counted: "
                                     "{estimate, value} or {tokenizer: path/to/tokenizer.json}.")
    budget_tokens: float | None = Field(None, gt=0, description="Tokens in the mix (with phases: their sum, "
                                        "or left out).")
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
    phases: list[PhaseConfig] | None = Field(None, min_length=1, description="A staged mix (e.g. main, then an "
                                             "anneal on the best data): each phase its own plan and copies, "
                                             "marked mix_phase; output.split_by: mix_phase writes each apart.")

    @model_validator(mode="before")
    @classmethod
    def _read_weights_file(cls, data: Any) -> Any:
        return read_weights_file(data)

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

    def phase_configs(self) -> list[tuple[str | None, "MixConfig"]]:
        """(phase name, the config it plans with) per phase; ``[(None, self)]`` without phases."""
        if not self.phases:
            return [(None, self)]
        # tokens passes as the validated object: re-validating it would re-read the tokenizer file
        base = {**self.model_dump(exclude={"phases", "weights_file", "budget_tokens", "tokens"}), "tokens": self.tokens}
        out = []
        for phase in self.phases:
            own = phase.model_dump(exclude_none=True, exclude={"name", "weights_file"})
            if own.get("policy", "weights") != "weights" or "weights" in own:
                base_weights = None  # the phase's policy or weights replace the mix's
            else:
                base_weights = base["weights"]
            try:
                out.append((phase.name, MixConfig(**{**base, "weights": base_weights, **own})))
            except ValidationError as err:
                problems = "; ".join(e["msg"] for e in err.errors())
                raise ValueError(f"phase {phase.name}: {problems}") from None
        return out

    @model_validator(mode="after")
    def _phases(self) -> "MixConfig":
        if not self.phases:
            if self.budget_tokens is None:
                raise ValueError("budget_tokens is required (or phases, each with its budget_tokens)")
            return self
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names repeat: {', '.join(names)}")
        total = sum(p.budget_tokens for p in self.phases)
        if self.budget_tokens is not None and abs(total - self.budget_tokens) > 1e-9 * self.budget_tokens:
            raise ValueError(f"the phases' budgets sum to {total:,.0f} tokens, not budget_tokens "
                             f"{self.budget_tokens:,.0f}; fix one or leave budget_tokens out")
        self.phase_configs()  # each phase must make a valid config of its own
        return self

    @model_validator(mode="after")
    def _consistent(self) -> "MixConfig":
        if self.policy == "weights" and not self.weights:
            raise ValueError("policy weights needs weights: {group: weight, ...}")
        if self.policy != "weights" and self.weights:
            raise ValueError(f"weights are given but policy is {self.policy}; set policy: weights")
        if self.within_group == "top_score" and not self.score_column:
            raise ValueError("within_group top_score needs score_column")
        return self
