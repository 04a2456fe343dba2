"""Base documents of the near-duplicate corpus: real chunks of devdocs pages, synthetic
recombinations of passages, and greedy pruning of near duplicates among them.

The rules (chunk sizes, usable text, pruning at Jaccard 0.5) are described under "Build" in
bench/neardup_corpus.py.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHashLSH

from neardup_text import LSH_PERM, Sketcher, jaccard, shingle_hashes, utf8_len, words

SOURCES = {"apache2-doc": "apache", "git-doc": "devtools", "sqlite3-doc": "devtools",
           "python-django-doc": "devtools", "debian-reference-en": "reference", "r-doc-html": "reference"}
BASE_PRUNE_JACCARD = 0.5
CHUNK_BYTES, MIN_CHUNK_BYTES, MAX_PARAGRAPH_BYTES = 4500, 1000, 2000
PASSAGE_BYTES = 1000


def _split_long(p: str, limit: int = MAX_PARAGRAPH_BYTES) -> list[str]:
    if utf8_len(p) <= limit:
        return [p]
    pieces: list[str] = []
    for line in p.split("\n"):
        if utf8_len(line) <= limit:
            pieces.append(line)
        else:
            cur: list[str] = []
            size = 0
            for w in line.split(" "):
                cur.append(w)
                size += utf8_len(w) + 1
                if size >= limit * 3 // 4:
                    pieces.append(" ".join(cur))
                    cur, size = [], 0
            if cur:
                pieces.append(" ".join(cur))
    return _pack(pieces, limit * 3 // 4, 1, "\n")


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, none over 2 KB."""
    out: list[str] = []
    for p in re.split(r"\n[ \t]*\n", text):
        p = p.strip()
        if p:
            out.extend(_split_long(p))
    return out


def _pack(parts: list[str], target: int, min_bytes: int, sep: str = "\n\n") -> list[str]:
    """Consecutive ``parts`` packed into pieces of about ``target`` bytes."""
    chunks: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for p in parts:
        b = utf8_len(p) + len(sep)
        if cur and size + b > target * 1.15 and size >= target * 0.6:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += b
        if size >= target:
            chunks.append(cur)
            cur, size = [], 0
    if cur:
        chunks.append(cur)
    joined = (sep.join(c) for c in chunks)
    return [c for c in joined if utf8_len(c) >= min_bytes]


@dataclass
class Base:
    """A base document; ``page`` indexes the list of :func:`load_pages` (-1 when synthetic)."""

    text: str
    source: str
    page: int
    synthetic: bool
    hashes: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    sketch: LeanMinHash | None = field(repr=False, default=None)


def _usable(ws: list[str]) -> bool:
    return len(ws) >= 50 and sum(map(len, ws)) / len(ws) <= 15


def load_pages(source_path: str | Path) -> list[tuple[str, str]]:
    """(source, text) of each page with a distinct normalized text, in file order."""
    seen: set[bytes] = set()
    pages = []
    with gzip.open(source_path, "rt", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            key = xxhash.xxh128_digest(" ".join(words(rec["text"])).encode())
            if key in seen:
                continue
            seen.add(key)
            pages.append((SOURCES.get(rec["source"], rec["source"]), rec["text"]))
    return pages


def real_chunks(pages: list[tuple[str, str]]) -> tuple[list[Base], dict[str, list[tuple[int, str]]]]:
    """The usable distinct ~4.5 KB chunks of the pages, and each source's ~1 KB passages."""
    chunks, passages = [], defaultdict(list)
    seen: set[bytes] = set()
    for i, (source, text) in enumerate(pages):
        paras = paragraphs(text)
        passages[source].extend((i, p) for p in _pack(paras, PASSAGE_BYTES, 200))
        for c in _pack(paras, CHUNK_BYTES, MIN_CHUNK_BYTES):
            ws = words(c)
            key = xxhash.xxh128_digest(" ".join(ws).encode())
            if key in seen or not _usable(ws):
                continue
            seen.add(key)
            chunks.append(Base(c, source, i, False, shingle_hashes(ws)))
    return chunks, passages


def synthesize(count_by_source: dict[str, int], passages: dict[str, list[tuple[int, str]]],
               rng: random.Random) -> list[Base]:
    """Documents of 3.5-5.5 KB recombined from passages of different pages of one source."""
    out = []
    for source, count in sorted(count_by_source.items()):
        pool = list(passages[source])
        rng.shuffle(pool)
        pos = 0
        for _ in range(count):
            target, size, used, parts = rng.uniform(3500, 5500), 0, set(), []
            tries = 0
            while size < target and tries < 4 * len(pool):
                if pos == len(pool):
                    rng.shuffle(pool)
                    pos = 0
                page, text = pool[pos]
                pos += 1
                tries += 1
                if page in used:
                    continue
                used.add(page)
                parts.append(text)
                size += utf8_len(text) + 2
            doc = "\n\n".join(parts)
            ws = words(doc)
            if _usable(ws):
                out.append(Base(doc, source, -1, True, shingle_hashes(ws)))
    return out


class Pruner:
    """Greedy in arrival order: drop a document with Jaccard >= 0.5 with an earlier kept one."""

    def __init__(self, sketch: Sketcher) -> None:
        self.sketch, self.kept = sketch, []
        self.lsh = MinHashLSH(threshold=BASE_PRUNE_JACCARD, num_perm=LSH_PERM)

    def add(self, bases: Iterable[Base]) -> None:
        for b in bases:
            m = b.sketch = self.sketch(b.hashes)
            if any(jaccard(b.hashes, self.kept[j].hashes) >= BASE_PRUNE_JACCARD for j in self.lsh.query(m)):
                continue
            self.lsh.insert(len(self.kept), m)
            self.kept.append(b)
