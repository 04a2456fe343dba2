"""The rows and files of the sample corpus: one ``<source>.jsonl.gz`` per source, each line
a JSON record ``{"id", "text", "source", "url"}`` (scripts/make_sample.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

SOURCES = ("apache2-doc", "sqlite3-doc", "python-django-doc", "git-doc")


@dataclass
class Line:
    """One output line, and its ground-truth entry when it was planted."""

    data: bytes
    category: str | None = None  # None for a real document kept as is
    info: dict = field(default_factory=dict)


def record(doc_id: str, text: object, source: str, url: str) -> dict:
    return {"id": doc_id, "text": text, "source": source, "url": url}


def encode(row: dict) -> bytes:
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def synthetic(doc_id: str, text: object, source: str) -> bytes:
    return encode(record(doc_id, text, source, f"/synthetic/{doc_id}.html"))


def file_name(source: str) -> str:
    return f"{source}.jsonl.gz"
