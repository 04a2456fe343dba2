"""Operator registry: name -> operator class or composite.

Operators register with ``@register("name")`` at import. :func:`get` imports only the module
of the family it is asked for (``FAMILY_MODULES``); :func:`names` and an unknown name import
every family, so listings and error messages are complete.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, TypeVar

from operators.base import Composite, Operator

Registered = type[Operator[Any]] | type[Composite[Any]]
T = TypeVar("T", bound=Registered)

_REGISTRY: dict[str, Registered] = {}

FAMILY_MODULES = {
    "unique_ids": "operators.io.unique_ids",
    "exact_dedup": "operators.dedup.exact",
    "minhash_dedup": "operators.dedup.minhash",
    "heuristics": "operators.quality.heuristics",
    "gopher_quality": "operators.quality.gopher",
    "gopher_repetition": "operators.quality.repetition",
    "c4_quality": "operators.quality.c4",
    "fineweb_quality": "operators.quality.fineweb",
    "language_id": "operators.quality.language",
    "classifier_score": "operators.quality.classifier",
    "text_quality_score": "operators.quality.text_quality",
    "filter": "operators.filtering.filter",
    "quantiles": "operators.filtering.quantiles",
    "mix": "operators.mixing.mix",
    "embed": "operators.embedding.embed",
    "kmeans": "operators.embedding.kmeans",
    "semantic_dedup": "operators.embedding.semantic_target",
    "cluster_prune": "operators.embedding.cluster_prune",
}
"""The module that registers each built-in family (a name and its ``name.part`` parts), so
that looking one up imports that module alone: a node that only embeds never imports
fastText, and a filter-only pipeline does not pay for torch or numba at start-up."""


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
    """Import every module of the ``operators`` package (idempotent): the registry is then
    complete even for a name whose family ``FAMILY_MODULES`` maps wrongly (a test checks it)."""
    import operators

    for info in pkgutil.walk_packages(operators.__path__, "operators."):
        importlib.import_module(info.name)


def get(name: str) -> Registered:
    """Look up ``name``, importing its family's module only; unknown names fail listing
    what is known."""
    family = name.split(".")[0]
    if name not in _REGISTRY and family in FAMILY_MODULES:
        importlib.import_module(FAMILY_MODULES[family])
    if name not in _REGISTRY:
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
