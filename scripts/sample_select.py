"""Selection of the real documents of the sample: loading the devdocs dump, one real
translated Apache page per language, and each source's base documents, none similar to
another (scripts/make_sample.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from sample_text import jaccard, normalize, shingles, stable_key, text_bytes

MIN_BYTES = 1_000
PREFERRED_MAX_BYTES = 30_000
MAX_BYTES = 60_000
SIMILARITY_LIMIT = 0.5  # word 5-shingle Jaccard; real docs above it with another are skipped
NON_ENGLISH_LANGS = ("de", "es", "fr", "ja", "pt-br", "ru", "tr", "zh-cn")  # ko is mojibake
EN_STOPWORDS = frozenset(
    "the and of to is in that for with this are be you it on as or by can not".split())


def load_docs(path: Path) -> list[dict]:
    """All source rows that are valid UTF-8 strings, sorted by id."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    good = []
    for row in rows:
        try:
            row["text"].encode("utf-8")
        except UnicodeEncodeError:
            continue
        good.append(row)
    return sorted(good, key=lambda r: r["id"])


def apache_lang(path: str) -> str | None:
    """Language directory of an Apache manual page (``.../manual/<lang>/...``)."""
    match = re.search(r"/apache2-doc/manual/([^/]+)/", path)
    return match.group(1) if match else None


def english_ratio(text: str) -> float:
    words = normalize(text).split(" ")
    return sum(w in EN_STOPWORDS for w in words) / max(1, len(words))


class Screen:
    """Accepts documents only if none accepted so far is similar (or identical) to them."""

    def __init__(self) -> None:
        self.accepted: list[set[int]] = []
        self.hashes: set[str] = set()

    def admit(self, text: str) -> bool:
        digest = hashlib.sha256(normalize(text).encode()).hexdigest()
        if digest in self.hashes:
            return False
        grams = shingles(text)
        for other in self.accepted:
            small, large = sorted((len(grams), len(other)))
            if small / large > SIMILARITY_LIMIT and jaccard(grams, other) > SIMILARITY_LIMIT:
                return False
        self.accepted.append(grams)
        self.hashes.add(digest)
        return True


def size_ok(text: str, limit: int) -> bool:
    return MIN_BYTES <= text_bytes(text) <= limit


def pick_non_english(docs: Sequence[dict], screen: Screen) -> list[dict]:
    """One real translated Apache page per language, first by path that is not English."""
    english = {d["path"].split("/manual/en/", 1)[1]: d["text"] for d in docs
               if apache_lang(d["path"]) == "en"}
    picked = []
    for lang in NON_ENGLISH_LANGS:
        marker = f"/manual/{lang}/"
        candidates = sorted((d for d in docs if marker in d["path"]), key=lambda d: d["path"])
        for doc in candidates:
            rel = doc["path"].split(marker, 1)[1]
            if (doc["text"] != english.get(rel) and size_ok(doc["text"], PREFERRED_MAX_BYTES)
                    and english_ratio(doc["text"]) < 0.04 and screen.admit(doc["text"])):
                picked.append({**doc, "lang": lang})
                break
    return picked


def pick_base(docs: Sequence[dict], source: str, count: int, screen: Screen) -> list[dict]:
    """``count`` real docs of ``source``: 1-30 KB first, then up to 60 KB, seeded order."""
    pool = [d for d in docs if d["source"] == source
            and (source != "apache2-doc" or apache_lang(d["path"]) == "en")]
    order = sorted(pool, key=lambda d: (not size_ok(d["text"], PREFERRED_MAX_BYTES),
                                        stable_key("base", d["id"])))
    picked = []
    for doc in order:
        if len(picked) == count:
            break
        if size_ok(doc["text"], MAX_BYTES) and screen.admit(doc["text"]):
            picked.append(doc)
    if len(picked) < count:
        raise SystemExit(f"make_sample: only {len(picked)} usable {source} docs, need {count}")
    return sorted(picked, key=lambda d: d["id"])
