"""What the quality rule families share: signal columns, pass flags, the batch loop.

A family (Gopher quality, Gopher repetition, C4, FineWeb) computes one numeric *signal*
per rule and document from the shared :class:`~operators.quality.text_stats.TextStats`,
and compares it with the threshold in its config. It writes, for family ``f``:

* ``quality_<f>_<rule>``: the signal (int64 counts, float64 ratios);
* ``quality_<f>_<rule>_ok``: the rule passes with the configured threshold (always true
  when the threshold is None, i.e. the rule is off);
* ``quality_<f>_pass``: every rule passes.

Some families add signals without a rule (context such as line counts); those get no
``_ok`` column. Nothing is dropped here: a later ``filter`` stage decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from operators.base import MapOperator, OperatorConfig, set_column
from operators.quality.text_stats import TextStats, text_stats

ConfigT = TypeVar("ConfigT", bound=OperatorConfig)


@dataclass(frozen=True)
class Signal:
    """One signal column: its name, its type, whether it is a rule, and the rule's test.

    A rule whose ``check`` is None is switched off: its ``_ok`` column is all true.
    """

    name: str
    type: pa.DataType
    rule: bool = True
    check: Callable[[np.ndarray], np.ndarray] | None = None


class Bounds(OperatorConfig):
    """An inclusive range of allowed values; None on a side means no bound there."""

    min: float | None = Field(None, description="Smallest allowed value (None: no lower bound).")
    max: float | None = Field(None, description="Largest allowed value (None: no upper bound).")

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


def at_least(threshold: float | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """Pass test ``value >= threshold`` (None: the rule is off)."""
    return None if threshold is None else (lambda values: values >= threshold)


def at_most(threshold: float | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """Pass test ``value <= threshold`` (None: the rule is off)."""
    return None if threshold is None else (lambda values: values <= threshold)


def between(low: float | None, high: float | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """Pass test ``low <= value <= high`` (None on a side: no bound there)."""
    if low is None and high is None:
        return None
    return lambda values: ((values >= low) if low is not None else True) & \
        ((values <= high) if high is not None else True)


class QualityScorer(MapOperator[ConfigT]):
    """Base of the rule-family operators; subclasses set ``family`` and define
    :meth:`signals` (the columns for a config) and :meth:`score` (their values)."""

    family: ClassVar[str]
    keeps_rows = True
    reads = ("text",)

    @classmethod
    def signals(cls, config: OperatorConfig) -> tuple[Signal, ...]:
        """The signal columns for ``config``, rules and context alike, in output order."""
        raise NotImplementedError

    @classmethod
    def column(cls, name: str) -> str:
        """The signal column called ``name``."""
        return f"quality_{cls.family}_{name}"

    @classmethod
    def pass_column(cls) -> str:
        """The column saying every rule of the family passes."""
        return f"quality_{cls.family}_pass"

    @classmethod
    def schema(cls, config: OperatorConfig) -> pa.Schema:
        """Every column written for ``config``, in order, with its type."""
        signals = cls.signals(config)
        fields = [pa.field(cls.column(s.name), s.type) for s in signals]
        fields += [pa.field(cls.column(s.name) + "_ok", pa.bool_()) for s in signals if s.rule]
        return pa.schema(fields + [pa.field(cls.pass_column(), pa.bool_())])

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        """Signals, then ``_ok`` flags, then the family's pass flag."""
        return tuple(cls.schema(config).names)

    def score(self, stats: TextStats) -> dict[str, np.ndarray]:
        """Every signal of :meth:`signals`, by name, one value per document."""
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Append (or replace) the family's columns for every row of ``batch``."""
        stats = text_stats(batch["text"])
        values = self.score(stats)
        columns: dict[str, np.ndarray] = {}
        passed = np.ones(stats.num_docs, dtype=bool)
        for signal in self.signals(self.config):
            columns[self.column(signal.name)] = values[signal.name]
            if signal.rule:
                ok = np.ones(stats.num_docs, dtype=bool)
                if signal.check is not None:
                    ok &= signal.check(values[signal.name])
                columns[self.column(signal.name) + "_ok"] = ok
                passed &= ok
        columns[self.pass_column()] = passed
        for field in self.schema(self.config):
            batch = set_column(batch, field.name, pa.array(columns[field.name], type=field.type))
        return batch
