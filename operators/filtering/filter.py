"""Row filter over columns written by earlier stages, driven by safe expressions."""

from __future__ import annotations

import logging
import re

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from operators.base import DROP_REASON, MapOperator, OperatorConfig, with_drop_reason
from operators.filtering.expression import CompiledExpression, parse_expression
from operators.registry import register

logger = logging.getLogger(__name__)

REASON_PATTERN = re.compile(r"^[a-z0-9_]+:[a-z0-9_.\-]+$")
FAMILIES = ("quality", "dedup", "cluster", "mix", "lang")
"""Column prefixes that become the family of a derived drop reason."""


def default_reason(expression: CompiledExpression) -> str:
    """The drop reason of a rule that names none, from the first column it references.

    ``quality_word_count`` gives ``quality:word_count`` (the prefix before the first
    underscore is the family when it is one of :data:`FAMILIES`); any other column ``c`` gives
    ``filter:c``; an expression without columns gives ``filter:expression``. Characters a
    reason may not hold become ``_``.

    Args:
        expression: A compiled rule expression.

    Returns:
        A reason matching :data:`REASON_PATTERN`.
    """
    if not expression.columns:
        return "filter:expression"
    column = expression.columns[0].lower()
    family, _, rest = column.partition("_")
    if family not in FAMILIES or not rest:
        family, rest = "filter", column
    return f"{family}:{re.sub(r'[^a-z0-9_.-]', '_', rest)}"


def _check_expression(text: str) -> str:
    """``text`` unchanged once it parses."""
    parse_expression(text)  # ExpressionError is a ValueError: pydantic reports it at the field
    return text


def _check_reason(reason: str | None) -> str | None:
    """``reason`` unchanged once it matches :data:`REASON_PATTERN`."""
    if reason is not None and not REASON_PATTERN.match(reason):
        raise ValueError(
            f"drop reason {reason!r} must look like '<family>:<reason>' "
            f"(pattern {REASON_PATTERN.pattern}), e.g. 'quality:too_short'"
        )
    return reason


class Rule(BaseModel):
    """One keep-condition; rows where it is false or null are dropped with ``reason``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep: str = Field(
        description="Boolean expression over columns; rows where it is false or null are dropped."
    )
    reason: str | None = Field(
        None,
        description="Drop reason '<family>:<reason>'; default derived from the first column "
        "the expression references (quality_word_count -> quality:word_count).",
    )

    @field_validator("keep")
    @classmethod
    def _keep_parses(cls, keep: str) -> str:
        return _check_expression(keep)

    @field_validator("reason")
    @classmethod
    def _reason_well_formed(cls, reason: str | None) -> str | None:
        return _check_reason(reason)


class FilterConfig(OperatorConfig):
    """Either a single ``expr`` (with an optional ``reason``) or an ordered list of ``rules``."""

    expr: str | None = Field(
        None, description="Boolean keep-expression; rows where it is false or null are dropped."
    )
    reason: str | None = Field(
        None, description="Drop reason for ``expr``; default derived from its first column."
    )
    rules: tuple[Rule, ...] | None = Field(
        None,
        description="Keep-rules applied in order; a row gets the reason of the first it fails.",
    )

    @field_validator("expr")
    @classmethod
    def _expr_parses(cls, expr: str | None) -> str | None:
        return expr if expr is None else _check_expression(expr)

    @field_validator("reason")
    @classmethod
    def _reason_well_formed(cls, reason: str | None) -> str | None:
        return _check_reason(reason)

    @model_validator(mode="after")
    def _one_form(self) -> FilterConfig:
        if (self.expr is None) == (self.rules is None):
            given = "both" if self.expr is not None else "neither"
            raise ValueError(f"give exactly one of 'expr' or 'rules' (got {given})")
        if self.rules is not None and self.reason is not None:
            raise ValueError("'reason' goes with 'expr'; with 'rules', give each rule its reason")
        if self.rules is not None and not self.rules:
            raise ValueError("'rules' must hold at least one rule")
        return self

    def resolved_rules(self) -> tuple[Rule, ...]:
        """The rules in order, as given or as the single ``expr``/``reason`` rule."""
        if self.rules is not None:
            return self.rules
        return (Rule(keep=self.expr, reason=self.reason),)


@register("filter")
class Filter(MapOperator[FilterConfig]):
    """Mark the rows that fail any keep-rule, with the reason of the first rule they fail.

    Each rule is a boolean expression over columns (see
    :mod:`operators.filtering.expression`: parsed with :func:`ast.parse` and translated to
    ``pyarrow.compute``, never ``eval``'d). Rules are evaluated in order over the whole batch;
    a row that fails rule *i* and no earlier rule gets rule *i*'s reason in ``drop_reason``.
    A row already dropped upstream keeps its earlier reason. All rows are returned: jobs/
    routes the marked ones to ``rejected/``, in the manner of SQL ``WHERE`` or datatrove's
    ``LambdaFilter`` (but declarative).

    Null semantics: SQL three-valued logic inside an expression; a null final result means
    "not kept", so ``quality_word_count >= 50`` drops rows whose count is null.

    Drop reasons: each rule's ``reason``, by default ``<family>:<rest>`` from the first column
    it references (``quality_word_count`` -> ``quality:word_count``), else ``filter:<column>``.

    Reads: the columns the expressions reference. Writes: drop_reason.
    Deterministic; no state beyond the config.
    """

    version = 1
    Config = FilterConfig
    keeps_rows = True  # the stage stores the kept rows' numbers, not their text (jobs/parts.py, row_part)
    writes = (DROP_REASON,)

    def __init__(self, config: FilterConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._rules: list[tuple[CompiledExpression, str]] = []
        for rule in config.resolved_rules():
            expression = parse_expression(rule.keep)
            self._rules.append((expression, rule.reason or default_reason(expression)))

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        """Every column any rule references, in order of first appearance."""
        if not isinstance(config, FilterConfig):
            raise TypeError(f"filter needs a FilterConfig, got {type(config).__name__}")
        columns: dict[str, None] = {}
        for rule in config.resolved_rules():
            columns.update(dict.fromkeys(parse_expression(rule.keep).columns))
        return tuple(columns)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Return every row of ``batch``, failing rows marked in ``drop_reason``."""
        reasons = pa.nulls(batch.num_rows, pa.string())
        for expression, reason in self._rules:
            keep = expression.evaluate(batch)
            # coalesce keeps the reason of the first failed rule.
            failed = pc.if_else(keep, pa.scalar(None, pa.string()), pa.scalar(reason))
            reasons = pc.coalesce(reasons, failed)
        return with_drop_reason(batch, reasons)
