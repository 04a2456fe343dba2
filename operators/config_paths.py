"""Dotted paths into an operator's config: the fields a composite's part declares it reads.

Only those fields enter the part's stage fingerprint (jobs/pipeline_load.py ``fingerprint_config``),
so a changed parameter reruns the parts that read it and nothing else.
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel


def project_config(dump: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """``dump`` restricted to the dotted ``paths``, nested keys kept nested.

    A path through an optional sub-config that is unset stops there: ``{"calibrate": None}``.
    """
    out: dict[str, Any] = {}
    for path in paths:
        *parents, leaf = path.split(".")
        source, target = dump, out
        for key in parents:
            if source.get(key) is None:
                target.setdefault(key, None)
                break
            source = source[key]
            target = target.setdefault(key, {})
        else:
            target[leaf] = source[leaf]
    return out


def config_path_problem(model: type[BaseModel], path: str) -> str | None:
    """Why dotted ``path`` names no field of ``model`` (None when it does)."""
    current: type[BaseModel] | None = model
    keys = path.split(".")
    for n, key in enumerate(keys):
        if current is None:
            return f"{'.'.join(keys[:n])} is not a sub-config"
        field = current.model_fields.get(key)
        if field is None:
            return f"{current.__name__} has no field {key!r}"
        candidates = (field.annotation, *typing.get_args(field.annotation))
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return None
