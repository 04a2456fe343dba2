"""Planted near duplicates: the copies of the near-duplicate corpus and how each is made.

About 15 % of the corpus are copies of base documents, made by one of four transformations
(``edit``, ``boilerplate``, ``formatting``, ``truncation``); the rules are described under
"Build" in bench/neardup_corpus.py.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

COPY_FRACTION = 0.15
COPIES_PER_ORIGINAL = ((1, 0.60), (2, 0.20), (3, 0.12), (4, 0.08))
KINDS = (("edit", 0.4), ("boilerplate", 0.2), ("formatting", 0.2), ("truncation", 0.2))
EDIT_RATES = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20)
BOILERPLATE = (
    "Copyright 2024 Example Media Group. All rights reserved.",
    "This site uses cookies to improve your experience; by continuing you accept our cookie policy.",
    "Home | About | Products | Support | Contact | Privacy Policy | Terms of Use",
    "Subscribe to our newsletter and never miss an update from our editors.",
    "Share this page on Twitter, Facebook, LinkedIn or by email.",
    "Last updated on the date shown above. Report a problem with this page.",
    "Sponsored content: try the premium plan free for thirty days, cancel anytime.",
    "Skip to main content. Toggle navigation. Search the documentation.",
    "Was this page helpful? Yes No. Send feedback to the documentation team.",
    "Related articles, tutorials and videos are listed in the sidebar on the right.",
)

_TOKEN = re.compile(r"\S+\s*")


def _tokens(text: str) -> tuple[str, list[str]]:
    """Leading whitespace and the words, each with its trailing whitespace."""
    lead = text[:len(text) - len(text.lstrip())]
    return lead, _TOKEN.findall(text)


def _edit(text: str, rate: float, vocab: list[str], rng: random.Random) -> str:
    lead, toks = _tokens(text)
    n_ops = min(len(toks), max(1, round(rate * len(toks))))
    ops = dict(zip(rng.sample(range(len(toks)), n_ops), rng.choices(("ins", "del", "sub"), k=n_ops)))
    out = [lead]
    for i, t in enumerate(toks):
        op = ops.get(i)
        if op == "del":
            continue
        if op == "sub":
            word = t.rstrip()
            t = rng.choice(vocab) + t[len(word):]
        elif op == "ins":
            out.append(rng.choice(vocab) + " ")
        out.append(t)
    return "".join(out).rstrip()


def _boilerplate(text: str, rng: random.Random) -> tuple[str, int]:
    want, sents = rng.randint(20, 60), []
    while sum(len(s.split()) for s in sents) < want:
        sents.append(rng.choice(BOILERPLATE))
    ws = " ".join(sents).split()[:want]
    where = rng.choice(("header", "footer", "both"))
    if where == "header":
        return " ".join(ws) + "\n\n" + text, want
    if where == "footer":
        return text + "\n\n" + " ".join(ws), want
    cut = rng.randint(1, want - 1)
    return " ".join(ws[:cut]) + "\n\n" + text + "\n\n" + " ".join(ws[cut:]), want


_TRAIL_PUNCT = ".,;:!?"
_SIGMA = set("\u03a3\u03c3\u03c2")


def _reformat(text: str, rng: random.Random) -> tuple[str, str]:
    """Case, whitespace and punctuation changes that leave the normalized words unchanged."""
    lead, toks = _tokens(text)
    changes = [c for c in ("case", "whitespace", "punctuation") if rng.random() < 0.6] or ["case"]
    case_mode = rng.choice(("upper", "title", "lower", "swap"))
    out = [lead]
    for t in toks:
        word, space = t.rstrip(), t[len(t.rstrip()):]
        if _SIGMA.intersection(unicodedata.normalize("NFKC", word)):  # lower() picks σ/ς by context
            out.append(word + space)
            continue
        if "case" in changes and rng.random() < 0.5:
            new = {"upper": word.upper(), "title": word.title(), "lower": word.lower(),
                   "swap": word.swapcase()}[case_mode]
            if new.lower() == word.lower():  # e.g. 'ß'.upper() == 'SS' would change the word
                word = new
        if "punctuation" in changes and rng.random() < 0.15:
            stripped = word.rstrip(_TRAIL_PUNCT)
            if stripped:
                word = stripped + rng.choice(("", ",", ";", ".", "!", " -", "..."))
        if "whitespace" in changes and space and rng.random() < 0.2:
            space = rng.choice(("  ", "\t", "\u00a0", "\n", " \n ")) if "\n" not in space else \
                rng.choice(("\n\n", "\n", " "))
        out.append(word + space)
    return "".join(out).rstrip(), "+".join(changes)


def _truncate(text: str, keep: float) -> str:
    lead, toks = _tokens(text)
    return (lead + "".join(toks[:max(1, round(keep * len(toks)))])).rstrip()


def vocabulary(docs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Each source's words for ``edit``: the first 200 tokens of each (text, source) in ``docs``."""
    vocab: dict[str, list[str]] = defaultdict(list)
    for text, source in docs:
        vocab[source].extend(t.rstrip() for t in _TOKEN.findall(text)[:200])
    return vocab


def plant_copies(items: list[tuple[str, str, np.ndarray | None]], n_base: int, n_copies: int,
                 vocab: dict[str, list[str]], rng: random.Random) -> tuple[list[list[int]], list[dict[str, Any]]]:
    """Up to ``n_copies`` copies of originals among the first ``n_base`` items, appended to ``items``.

    ``items`` are (text, source, shingle hashes or None); a copy is appended with hashes None.
    Returns the families (an original's index, then its copies') and one planted record per
    copy: ``_c`` and ``_o`` (indexes of the copy and its original), ``kind`` and ``param``.
    """
    families: list[list[int]] = []
    planted: list[dict[str, Any]] = []
    originals = rng.sample(range(n_base), min(n_base, n_copies))
    sizes, weights = zip(*COPIES_PER_ORIGINAL)
    kinds, kind_w = zip(*KINDS)
    for o in originals:
        if len(planted) >= n_copies:
            break
        family = [o]
        for _ in range(min(rng.choices(sizes, weights)[0], n_copies - len(planted))):
            text, source, _ = items[o]
            kind = rng.choices(kinds, kind_w)[0]
            if kind == "edit":
                param: Any = rng.choice(EDIT_RATES)
                new = _edit(text, param, vocab[source], rng)
            elif kind == "boilerplate":
                new, param = _boilerplate(text, rng)
            elif kind == "formatting":
                new, param = _reformat(text, rng)
            else:
                param = round(rng.uniform(0.60, 0.95), 3)
                new = _truncate(text, param)
            family.append(len(items))
            planted.append({"_c": len(items), "_o": o, "kind": kind, "param": param})
            items.append((new, source, None))
        families.append(family)
    return families, planted
