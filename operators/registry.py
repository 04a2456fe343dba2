"""Operator registry: name -> operator class or composite.

Operators register with ``@register("name")`` at import; :func:`load_builtin` imports every
family so the registry is complete wherever it is consulted (driver, validator, workers).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

from operators.base import Composite, Operator

Registered = type[Operator[Any]] | type[Composite[Any]]
T = TypeVar("T", bound=Registered)

_REGISTRY: dict[str, Registered] = {}

_BUILTIN_MODULES = (
    "operators.io.unique_ids",
    "operators.dedup.exact",
    "operators.dedup.minhash",
    "operators.dedup.minhash_signature",
    "operators.dedup.lsh",
    "operators.dedup.near_keep",
    "operators.quality.heuristics",
    "operators.quality.gopher",
    "operators.quality.repetition",
    "operators.quality.c4",
    "operators.quality.fineweb",
    "operators.quality.language",
    "operators.quality.classifier",
    "operators.quality.text_quality",
    "operators.filtering.filter",
    "operators.filtering.quantiles",
    "operators.mixing.mix",
    "operators.embedding.embed",
    "operators.embedding.kmeans",
    "operators.embedding.semantic_dedup",
    "operators.embedding.semantic_target",
    "operators.embedding.cluster_prune",
)


class UnknownOperatorError(KeyError):
    """A name that no operator registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` available under ``name`` in pipelines."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"operator name {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def load_builtin() -> None:
    """Import every built-in operator module (idempotent)."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def get(name: str) -> Registered:
    """Look up ``name``; unknown names fail listing what is known."""
    load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownOperatorError(f"unknown operator {name!r}; known operators: {known}") from None


def names() -> list[str]:
    """Every registered name, sorted."""
    load_builtin()
    return sorted(_REGISTRY)
