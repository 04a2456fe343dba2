"""The shared devdocs corpus (``../shared/data/devdocs.jsonl.gz``) as benchmark input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DEVDOCS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devdocs.jsonl.gz"


def cut_texts(chars: int, limit: int | None = None, path: Path = DEVDOCS) -> list[str]:
    """Texts of at least ``chars`` characters cut to ``chars``, in file order, at most ``limit``.

    Returns an empty list when ``path`` does not exist (a clone without ../shared).
    """
    texts: list[str] = []
    if not path.exists():
        return texts
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line).get("text") or ""
            if len(text) >= chars:
                texts.append(text[:chars])
                if len(texts) == limit:
                    break
    return texts
