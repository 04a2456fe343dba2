"""The run report's quality-signal histograms, with the filter's cuts drawn on them.

A signal is a numeric or boolean document column named ``quality_*`` or ``lang_*``, or one a
``filter`` rule compares to a constant. Each is shown on the documents of the first ``filter``
stage whose rules name it (else the first filter after it appears, else the last stage that
has it), split into the documents that filter kept, those a rule on this column removed, and
those it removed for another reason: a filter's rejected rows are stored whole, so they still
carry every signal. At most :data:`HISTOGRAM_VALUES` values per series are read.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.report_reading import CommittedStage, sample_columns
from jobs.stage_rows import RunRecord
from jobs.store import Store
from operators.base import DROP_REASON
from operators.filtering.expression import ExpressionError, parse_expression
from operators.filtering.filter import default_reason

SIGNAL_PREFIXES = ("quality_", "lang_")
HISTOGRAM_VALUES = 100_000
"""Most values read per series of a histogram."""
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class FilterRule:
    """One keep-rule of a ``filter`` stage, with the drop reason it gives and what it reads."""

    keep: str
    reason: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Cut:
    """Where a rule compares a column with a constant: the rule keeps ``column <op> value``."""

    column: str
    op: str
    value: float
    reason: str


@dataclass(frozen=True)
class Series:
    """One group of documents in a histogram: sampled values, and the documents each stands for."""

    label: str
    values: np.ndarray
    weight: float


@dataclass(frozen=True)
class SignalHistogram:
    """A signal column's distribution over one stage's documents."""

    column: str
    stage: str
    boolean: bool
    series: tuple[Series, ...]
    cuts: tuple[Cut, ...]
    sampled: bool

    @property
    def documents(self) -> int:
        """Documents the histogram stands for (nulls left out)."""
        return round(sum(len(s.values) * s.weight for s in self.series))


def filter_rules(run: RunRecord, stage: CommittedStage) -> list[FilterRule]:
    """The keep-rules of a ``filter`` stage as run.json records its config, in order."""
    config = run.stage_config(stage.stage)
    given = config.get("rules") or ([{"keep": config["expr"], "reason": config.get("reason")}]
                                    if config.get("expr") else [])
    rules = []
    for rule in given:
        try:
            expression = parse_expression(rule["keep"])
        except ExpressionError:  # validated when the run started; a config from elsewhere may not be
            continue
        rules.append(FilterRule(rule["keep"], rule.get("reason") or default_reason(expression),
                                tuple(expression.columns)))
    return rules


def rule_cuts(rule: FilterRule) -> list[Cut]:
    """Every comparison of a column with a number in ``rule`` (chains and ``and``/``or`` too)."""
    cuts = []
    for node in ast.walk(ast.parse(rule.keep, mode="eval")):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            symbol = _SYMBOLS.get(type(op))
            if symbol is None:
                continue
            if isinstance(left, ast.Name) and (value := _number(right)) is not None:
                cuts.append(Cut(left.id, symbol, value, rule.reason))
            elif isinstance(right, ast.Name) and (value := _number(left)) is not None:
                cuts.append(Cut(right.id, _FLIPPED[symbol], value, rule.reason))
    return cuts


def _number(node: ast.expr) -> float | None:
    """The value of a numeric literal (``-3`` too); None for anything else (booleans included)."""
    sign = 1.0
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return sign * float(node.value)
    return None


def _plottable(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def signal_columns(stages: list[CommittedStage], cut_columns: set[str]) -> dict[str, int]:
    """Each signal column with the position in ``stages`` of the first stage that has it."""
    found: dict[str, int] = {}
    for n, stage in enumerate(stages):
        for field in stage.schema or []:
            if field.name not in found and _plottable(field.type) and (
                    field.name.startswith(SIGNAL_PREFIXES) or field.name in cut_columns):
                found[field.name] = n
    return found


def gather_histograms(store: Store, run: RunRecord, stages: list[CommittedStage]) -> list[SignalHistogram]:
    """A histogram of every signal column, in the order the columns first appear."""
    rules = {n: filter_rules(run, s) for n, s in enumerate(stages) if s.op == "filter"}
    cut_columns = {c.column for rs in rules.values() for r in rs for c in rule_cuts(r)}
    homes: dict[int, list[str]] = {}
    for column, first in signal_columns(stages, cut_columns).items():
        homes.setdefault(_home(stages, rules, column, first), []).append(column)
    out = []
    for n, columns in sorted(homes.items()):
        out += _stage_histograms(store, stages[n], rules.get(n, []), columns)
    order = list(signal_columns(stages, cut_columns))
    return sorted(out, key=lambda h: order.index(h.column))


def _home(stages: list[CommittedStage], rules: dict[int, list[FilterRule]], column: str, first: int) -> int:
    """Where ``column`` is shown (see the module docstring)."""
    later = [n for n in sorted(rules) if n >= first and stages[n].has(column)]
    naming = [n for n in later if any(column in r.columns for r in rules[n])]
    if naming or later:
        return (naming or later)[0]
    return max(n for n, s in enumerate(stages) if s.has(column))


def _stage_histograms(store: Store, stage: CommittedStage, rules: list[FilterRule],
                      columns: list[str]) -> list[SignalHistogram]:
    kept = sample_columns(store, stage.result.files, columns, HISTOGRAM_VALUES)
    removed = (sample_columns(store, stage.result.rejected, [*columns, DROP_REASON], HISTOGRAM_VALUES)
               if rules and stage.result.rejected else None)
    kept_table, removed_table = kept.table(), removed.table() if removed else None
    out = []
    for column in columns:
        boolean = pa.types.is_boolean(stage.schema.field(column).type) if stage.schema else False
        if removed is None:
            series = [Series("documents", _values(kept_table, column), kept.scale)]
        else:
            mine = [r.reason for r in rules if column in r.columns]
            by_rule = (pc.is_in(removed_table[DROP_REASON], value_set=pa.array(mine, pa.string()))
                       if removed_table is not None else None)
            series = [Series("kept", _values(kept_table, column), kept.scale),
                      Series("removed by a rule on this column", _values(removed_table, column, by_rule),
                             removed.scale),
                      Series("removed for another reason", _values(removed_table, column,
                                                                   pc.invert(by_rule) if by_rule is not None
                                                                   else None), removed.scale)]
        cuts = [c for r in rules for c in rule_cuts(r) if c.column == column]
        out.append(SignalHistogram(column, stage.name, boolean, tuple(series), tuple(cuts),
                                   kept.sampled or bool(removed and removed.sampled)))
    return out


def _values(table: pa.Table | None, column: str, mask: pa.ChunkedArray | None = None) -> np.ndarray:
    """A column's non-null, finite values as float64 (booleans as 0 and 1), where ``mask`` holds."""
    if table is None:
        return np.empty(0)
    values = table[column] if mask is None else table[column].filter(mask)
    values = values.drop_null()
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8())
    array = values.to_numpy().astype(np.float64) if len(values) else np.empty(0)
    return array[np.isfinite(array)]
