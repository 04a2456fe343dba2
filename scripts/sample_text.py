"""Text helpers of the sample builder: the exact-dedup normalization, word shingles and
Jaccard similarity, UTF-8 sizes and the seeded sort key (scripts/make_sample.py)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

SEED = 20240611


def normalize(text: str) -> str:
    """The exact-dedup normalization: NFKC, lowercase, whitespace collapsed, stripped."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower()).strip()


def shingles(text: str, size: int = 5) -> set[int]:
    """Hashed word ``size``-grams of the normalized text (the whole text if shorter)."""
    words = normalize(text).split(" ")
    grams = [" ".join(words[i:i + size]) for i in range(max(1, len(words) - size + 1))]
    return {int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big")
            for g in grams}


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def text_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def stable_key(*parts: str) -> str:
    """A seeded, platform-independent sort key (a deterministic shuffle order)."""
    return hashlib.sha256("\x00".join((str(SEED), *parts)).encode()).hexdigest()
