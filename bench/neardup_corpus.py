"""A near-duplicate corpus with exact ground truth, for benchmarking MinHash dedup.

Build
-----
Base documents are real text from ``shared/data/devdocs.jsonl.gz`` (Debian documentation
pages). Pages are first deduplicated by normalized text (many apache2-doc language variants
are copies of the English page), split into paragraphs (blank-line separated; paragraphs over
2 KB are cut at line, then word, boundaries) and packed into chunks of about 4.5 KB at
paragraph boundaries; pages under 4.5 KB stay whole and chunks under 1 KB are dropped, as are
chunks with fewer than 50 words or a mean word length over 15 characters (text that
whitespace does not tokenize, e.g. Chinese or Japanese, where word shingles mean little).
When ``n_docs`` needs more base documents than the real chunks give, synthetic ones are made
by recombining *passages* (runs of consecutive paragraphs, about 1 KB) of different pages of
the same source into documents of 3.5-5.5 KB; passages are drawn from a shuffled pool
cycled per source, so a passage recurs only after the whole pool was used.
Base documents are then pruned greedily (real chunks first, then synthetic ones, in a
seeded order): a document whose word-5-gram Jaccard with an already kept one is >= 0.5 is
dropped (candidates from a datasketch MinHashLSH at threshold 0.5, 256 permutations; exact
Jaccard decides). So no two base documents are near duplicates, and the planted copies are
the only ground truth (``stats.unplanted_true_edges`` checks it).

Sources: the devdocs packages map to three sources, ``apache`` (apache2-doc), ``devtools``
(git-doc, sqlite3-doc, python-django-doc) and ``reference`` (debian-reference-en,
r-doc-html). A copy always keeps its original's source (dedup scope is per source).

Planted near duplicates: about 15 % of the corpus are copies. Originals are drawn without
replacement from the base documents and get 1-4 copies (clusters of 2-5; weights .6/.2/.12/
.08); each copy is made from the original by one transformation:

* ``edit`` (40 %): word edits at a rate drawn from {1, 2, 5, 10, 15, 20} % of the words; each
  edit is an insertion, deletion or substitution (equally likely) at a distinct position,
  new words drawn from the same source's vocabulary; line layout is kept.
* ``boilerplate`` (20 %): a header, a footer or both, 20-60 words in all, made of generic
  web-page sentences (copyright, cookie, navigation notices).
* ``formatting`` (20 %): case, whitespace (double spaces, tabs, no-break spaces, line
  breaks) and punctuation (changed, added or removed next to whitespace) only; such a copy
  normalizes to the same words as its original (Jaccard 1.0).
* ``truncation`` (20 %): the first 60-95 % of the words.

Ids are random 16-hex-digit strings; the corpus is shuffled, so neither the id order nor the
file order says which member of a family is the original.

Ground truth (exact)
--------------------
Normalization: Unicode NFKC, lowercase, every punctuation or symbol character (Unicode
categories P* and S*, including ``_``) replaced by a space, split on whitespace. Shingles:
the SET of word 5-grams of a document (a document of fewer than 5 words has one shingle, its
whole word sequence). Shingle sets are held as 64-bit hashes (xxh64 per word, then an
order-sensitive mix of the 5 word hashes); two distinct 5-grams colliding is a 2^-64 event,
so Jaccard values are exact for all practical purposes. Two documents of the same source
are true duplicates when their Jaccard is >= ``threshold`` (0.8). Candidate pairs are every
pair a MinHashLSH at threshold 0.5 with 256 permutations returns (per source, all documents)
plus every planted pair (copy-original and copy-copy in a family); exact Jaccard decides each.
The connected components of the true-duplicate graph are the *true clusters*; a cluster of k
documents should lose exactly k-1 of them (which one is kept does not matter).

Scoring (:func:`score`)
-----------------------
Over documents, counted per true cluster: with r of a cluster's k members removed,
TP = min(r, k-1); the excess max(0, r-(k-1)) (the cluster wiped out) is a false positive, as
is every removed document in no true cluster ("wrongly removed"); FN = sum over clusters of
(k-1) - TP. precision = TP / (TP+FP) (1.0 when nothing was removed), recall = TP / sum(k-1),
F1 their harmonic mean. Also: clusters wiped out (all k members removed); formatting-only
recall = the fraction of formatting copies whose pair (copy, original) is not both kept (the
copy or the original was removed); the same pair recall for every kind, over the planted
pairs that are true duplicates; and, by kind, the planted copies in no true cluster (below the
threshold with every relative) that were removed, a part of the wrongly removed.

CLI: ``python bench/neardup_corpus.py --docs 20000 --out /tmp/neardup`` writes
``part-NNNNN.jsonl.gz`` shards (fields id, text, source) and ``truth.json``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import math
import random
import re
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHash, MinHashLSH

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "devdocs.jsonl.gz"
SOURCES = {"apache2-doc": "apache", "git-doc": "devtools", "sqlite3-doc": "devtools",
           "python-django-doc": "devtools", "debian-reference-en": "reference", "r-doc-html": "reference"}
NGRAM = 5
THRESHOLD = 0.8
BASE_PRUNE_JACCARD = 0.5
CHUNK_BYTES, MIN_CHUNK_BYTES, MAX_PARAGRAPH_BYTES = 4500, 1000, 2000
PASSAGE_BYTES = 1000
COPY_FRACTION = 0.15
COPIES_PER_ORIGINAL = ((1, 0.60), (2, 0.20), (3, 0.12), (4, 0.08))
KINDS = (("edit", 0.4), ("boilerplate", 0.2), ("formatting", 0.2), ("truncation", 0.2))
EDIT_RATES = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20)
LSH_PERM = 256
_PERM_SEED = 7
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD], dtype=np.uint64)
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


# -- normalization and shingles (shared by the truth, the baseline and the ceiling) ---------
@functools.cache
def _punct_tables() -> tuple[dict[int, str], bytes]:
    """Every Unicode punctuation (P*) and symbol (S*) code point -> space, for str and ASCII bytes."""
    table = {cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp))[0] in "PS"}
    ascii_punct = bytes(cp for cp in range(128) if cp in table)
    return table, bytes.maketrans(ascii_punct, b" " * len(ascii_punct))


def normalize(text: str) -> str:
    """NFKC, lowercase, punctuation and symbols to spaces (whitespace is collapsed by split)."""
    table, ascii_table = _punct_tables()
    text = unicodedata.normalize("NFKC", text).lower()
    if text.isascii():  # bytes.translate is several times faster than str.translate
        return text.encode().translate(ascii_table).decode()
    return text.translate(table)


def words(text: str) -> list[str]:
    """The normalized words of ``text``."""
    return normalize(text).split()


def shingle_strings(ws: list[str], n: int = NGRAM) -> set[str]:
    """The set of word n-grams, each joined with single spaces."""
    if len(ws) < n:
        return {" ".join(ws)} if ws else set()
    return {" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)}


_word_hash: dict[str, int] = {}


def shingle_hashes(ws: list[str], n: int = NGRAM) -> np.ndarray:
    """The set of word n-grams as sorted unique 64-bit hashes."""
    if not ws:
        return np.empty(0, np.uint64)
    get = _word_hash.get
    hw = np.fromiter((get(w) or _word_hash.setdefault(w, xxhash.xxh64_intdigest(w.encode())) for w in ws),
                     np.uint64, len(ws))
    m = min(n, len(ws))
    h = np.zeros(len(ws) - m + 1, np.uint64)
    for j in range(m):
        h += hw[j:len(ws) - m + 1 + j] * _MIX[j]
    h ^= h >> np.uint64(33)  # murmur3 fmix64: the sum above is linear, this avalanches it
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return np.unique(h)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard of two sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


class _Sketcher:
    """MinHash signatures over precomputed 64-bit shingle hashes (datasketch affine32 scheme)."""

    def __init__(self, num_perm: int = LSH_PERM) -> None:
        self.a, self.b = MinHash(num_perm=num_perm, seed=_PERM_SEED).permutations
        self.num_perm = num_perm

    def __call__(self, hashes: np.ndarray) -> LeanMinHash:
        if len(hashes):
            sig = ((hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)[:, None] * self.a + self.b).min(axis=0)
        else:
            sig = np.full(self.num_perm, 0xFFFFFFFF, np.uint32)
        return LeanMinHash(seed=_PERM_SEED, hashvalues=sig, scheme="affine32")


# -- base documents ----------------------------------------------------------------------
def _utf8_len(s: str) -> int:
    return len(s.encode())


def _split_long(p: str, limit: int = MAX_PARAGRAPH_BYTES) -> list[str]:
    if _utf8_len(p) <= limit:
        return [p]
    pieces: list[str] = []
    for line in p.split("\n"):
        if _utf8_len(line) <= limit:
            pieces.append(line)
        else:
            cur: list[str] = []
            size = 0
            for w in line.split(" "):
                cur.append(w)
                size += _utf8_len(w) + 1
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
        b = _utf8_len(p) + len(sep)
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
    return [c for c in joined if _utf8_len(c) >= min_bytes]


@dataclass
class _Base:
    text: str
    source: str
    page: int
    synthetic: bool
    hashes: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    sketch: LeanMinHash | None = field(repr=False, default=None)


def _usable(ws: list[str]) -> bool:
    return len(ws) >= 50 and sum(map(len, ws)) / len(ws) <= 15


def _load_pages(source_path: str | Path) -> list[tuple[str, str]]:
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


def _real_chunks(pages: list[tuple[str, str]]) -> tuple[list[_Base], dict[str, list[tuple[int, str]]]]:
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
            chunks.append(_Base(c, source, i, False, shingle_hashes(ws)))
    return chunks, passages


def _synthesize(count_by_source: dict[str, int], passages: dict[str, list[tuple[int, str]]],
                rng: random.Random) -> list[_Base]:
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
                size += _utf8_len(text) + 2
            doc = "\n\n".join(parts)
            ws = words(doc)
            if _usable(ws):
                out.append(_Base(doc, source, -1, True, shingle_hashes(ws)))
    return out


class _Pruner:
    """Greedy in arrival order: drop a document with Jaccard >= 0.5 with an earlier kept one."""

    def __init__(self, sketch: _Sketcher) -> None:
        self.sketch, self.kept = sketch, []
        self.lsh = MinHashLSH(threshold=BASE_PRUNE_JACCARD, num_perm=LSH_PERM)

    def add(self, bases: Iterable[_Base]) -> None:
        for b in bases:
            m = b.sketch = self.sketch(b.hashes)
            if any(jaccard(b.hashes, self.kept[j].hashes) >= BASE_PRUNE_JACCARD for j in self.lsh.query(m)):
                continue
            self.lsh.insert(len(self.kept), m)
            self.kept.append(b)


# -- transformations ----------------------------------------------------------------------
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


# -- ground truth -------------------------------------------------------------------------
@dataclass
class GroundTruth:
    """True clusters and planted pairs of one corpus; see the module docstring."""

    threshold: float
    ngram: int
    clusters: list[list[str]]
    planted: list[dict[str, Any]]
    stats: dict[str, Any]
    cluster_of: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cluster_of = {d: i for i, c in enumerate(self.clusters) for d in c}

    @property
    def to_remove(self) -> int:
        return sum(len(c) - 1 for c in self.clusters)

    def to_json(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"threshold": self.threshold, "ngram": self.ngram, "stats": self.stats,
                       "clusters": self.clusters, "planted": self.planted}, f)

    @classmethod
    def from_json(cls, path: str | Path) -> GroundTruth:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
        return cls(raw["threshold"], raw["ngram"], raw["clusters"], raw["planted"], raw["stats"])


def _components(n: int, edges: Iterable[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def _truth(docs: list[dict[str, Any]], hashes: list[np.ndarray], known: list[LeanMinHash | None],
           families: list[list[int]], planted: list[dict[str, Any]], threshold: float,
           sketch: _Sketcher) -> tuple[list[list[int]], dict]:
    pairs: set[tuple[int, int]] = set()
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(docs):
        by_source[d["source"]].append(i)
    for members in by_source.values():
        lsh = MinHashLSH(threshold=0.5, num_perm=LSH_PERM)
        sigs = {i: known[i] or sketch(hashes[i]) for i in members}
        with lsh.insertion_session() as session:
            for i in members:
                session.insert(i, sigs[i])
        for i in members:
            pairs.update((min(i, j), max(i, j)) for j in lsh.query(sigs[i]) if j != i)
    lsh_pairs = len(pairs)
    family_of = {}
    for f, members in enumerate(families):
        family_of.update((i, f) for i in members)
        pairs.update((a, b) for a in members for b in members if a < b)
    sims = {p: jaccard(hashes[p[0]], hashes[p[1]]) for p in pairs}
    edges = [p for p, s in sims.items() if s >= threshold]
    for p in planted:
        p["jaccard"] = round(sims[(min(p["_c"], p["_o"]), max(p["_c"], p["_o"]))], 4)
    unplanted = sum(1 for a, b in edges if family_of.get(a, -1) != family_of.get(b, -2))
    return _components(len(docs), edges), {"candidate_pairs_lsh": lsh_pairs, "candidate_pairs": len(pairs),
                                           "true_edges": len(edges), "unplanted_true_edges": unplanted}


def build_corpus(n_docs: int, seed: int, source_path: str | Path = DEFAULT_SOURCE, *,
                 threshold: float = THRESHOLD) -> tuple[list[dict[str, Any]], GroundTruth]:
    """``n_docs`` documents (about 15 % planted copies) and their exact ground truth.

    Returns docs as dicts with id, text and source, in a seeded random order.
    """
    t0 = time.perf_counter()
    rng = random.Random(seed)
    sketch = _Sketcher()
    n_copies = round(COPY_FRACTION * n_docs)
    n_base = n_docs - n_copies
    pages = _load_pages(source_path)
    real, passages = _real_chunks(pages)
    rng.shuffle(real)
    pruner = _Pruner(sketch)
    pruner.add(real)
    n_real_kept = len(pruner.kept)
    share = Counter(b.source for b in pruner.kept)
    for _ in range(5):
        short = n_base - len(pruner.kept)
        if short <= 0:
            break
        want = {s: math.ceil(1.1 * short * c / n_real_kept) + 1 for s, c in share.items()}
        pruner.add(_synthesize(want, passages, rng))
    bases = pruner.kept
    if len(bases) < n_base:
        raise RuntimeError(f"only {len(bases)} distinct base documents could be made; asked for {n_base}")
    bases = bases[:n_base]

    vocab: dict[str, list[str]] = defaultdict(list)
    for b in bases[:2000]:
        vocab[b.source].extend(t.rstrip() for t in _TOKEN.findall(b.text)[:200])
    items: list[tuple[str, str, np.ndarray | None]] = [(b.text, b.source, b.hashes) for b in bases]
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

    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < len(items):
        new_id = f"{rng.getrandbits(64):016x}"
        if new_id not in seen:
            seen.add(new_id)
            ids.append(new_id)
    docs = [{"id": ids[i], "text": t, "source": s} for i, (t, s, _) in enumerate(items)]
    hashes = [h if h is not None else shingle_hashes(words(t)) for t, _, h in items]
    known = [b.sketch for b in bases] + [None] * (len(items) - len(bases))
    comps, truth_stats = _truth(docs, hashes, known, families, planted, threshold, sketch)
    for p in planted:
        p["copy"], p["original"] = ids[p.pop("_c")], ids[p.pop("_o")]

    order = list(range(len(docs)))
    rng.shuffle(order)
    docs = [docs[i] for i in order]
    clusters = sorted(sorted(ids[i] for i in c) for c in comps)
    sizes_b = [_utf8_len(d["text"]) for d in docs]
    stats = {
        "docs": len(docs), "bytes": sum(sizes_b), "mean_doc_bytes": round(sum(sizes_b) / len(docs)),
        "median_doc_bytes": int(np.median(sizes_b)), "seed": seed,
        "distinct_pages": len(pages), "real_chunks": len(real), "real_chunks_after_pruning": n_real_kept,
        "base_docs": n_base, "base_real": sum(not b.synthetic for b in bases),
        "base_synthetic": sum(b.synthetic for b in bases),
        "docs_by_source": dict(sorted(Counter(d["source"] for d in docs).items())),
        "planted_copies": len(planted), "planted_by_kind": _planted_stats(planted, threshold),
        "true_clusters": len(clusters), "docs_in_true_clusters": sum(map(len, clusters)),
        "docs_to_remove": sum(len(c) - 1 for c in clusters),
        "cluster_sizes": dict(sorted(Counter(map(len, clusters)).items())),
        **truth_stats, "build_seconds": round(time.perf_counter() - t0, 1),
    }
    return docs, GroundTruth(threshold, NGRAM, clusters, planted, stats)


def _planted_stats(planted: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups: dict[str, list[float]] = defaultdict(list)
    for p in planted:
        groups[p["kind"]].append(p["jaccard"])
        if p["kind"] == "edit":
            groups[f"edit@{round(p['param'] * 100)}%"].append(p["jaccard"])
    for k in sorted(groups, key=lambda k: (k.split("@")[0], float(k.split("@")[1][:-1]) if "@" in k else 0)):
        js = groups[k]
        out[k] = {"n": len(js), "true_dup": sum(j >= threshold for j in js),
                  "mean_jaccard": round(float(np.mean(js)), 3), "min_jaccard": round(min(js), 3)}
    return out


# -- scoring ------------------------------------------------------------------------------
def score(removed_ids: set[str], truth: GroundTruth) -> dict[str, Any]:
    """Precision, recall and F1 of a removal set against the truth (module docstring)."""
    removed = set(removed_ids)
    per_cluster: Counter[int] = Counter()
    wrongly = 0
    for d in removed:
        c = truth.cluster_of.get(d)
        if c is None:
            wrongly += 1
        else:
            per_cluster[c] += 1
    tp = excess = wiped = 0
    for c, r in per_cluster.items():
        k = len(truth.clusters[c])
        tp += min(r, k - 1)
        excess += max(0, r - (k - 1))
        wiped += r == k
    fp = wrongly + excess
    fn = truth.to_remove - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / truth.to_remove if truth.to_remove else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    negatives_removed: Counter[str] = Counter()
    for p in truth.planted:
        caught = p["copy"] in removed or p["original"] in removed
        if p["jaccard"] >= truth.threshold:
            by_kind[p["kind"]][0] += 1
            by_kind[p["kind"]][1] += caught
        if p["copy"] in removed and p["copy"] not in truth.cluster_of:
            negatives_removed[p["kind"]] += 1
    fmt = [p["copy"] in removed or p["original"] in removed for p in truth.planted if p["kind"] == "formatting"]
    return {
        "removed": len(removed), "tp": tp, "fp": fp, "fn": fn,
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "wrongly_removed": wrongly, "clusters_wiped_out": wiped,
        "formatting_recall": round(sum(fmt) / len(fmt), 4) if fmt else None,
        "pair_recall_by_kind": {k: round(c / n, 4) for k, (n, c) in sorted(by_kind.items())},
        "planted_negatives_removed": dict(sorted(negatives_removed.items())),
    }


# -- files --------------------------------------------------------------------------------
def write_corpus(docs: list[dict[str, Any]], truth: GroundTruth, out: str | Path, shards: int = 8) -> list[Path]:
    """JSONL.gz shards ``part-NNNNN.jsonl.gz`` and ``truth.json`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part-*.jsonl.gz"):
        old.unlink()
    shards = max(1, min(shards, len(docs)))
    paths = []
    per = math.ceil(len(docs) / shards)
    for s in range(shards):
        path = out / f"part-{s:05d}.jsonl.gz"
        # mtime=0: the same seed gives byte-identical shards
        with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as raw, io.TextIOWrapper(raw, "utf-8") as f:
            for d in docs[s * per:(s + 1) * per]:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
        paths.append(path)
    truth.to_json(out / "truth.json")
    return paths


def read_corpus(corpus_dir: str | Path) -> list[dict[str, Any]]:
    """Every document of the shards under ``corpus_dir``, in file order."""
    docs = []
    for path in sorted(Path(corpus_dir).glob("part-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            docs.extend(json.loads(line) for line in f)
    return docs


def format_stats(stats: dict[str, Any]) -> str:
    """The corpus stats as a few readable lines."""
    lines = [
        f"docs {stats['docs']:,}  bytes {stats['bytes'] / 1e6:.1f} MB  mean doc {stats['mean_doc_bytes']:,} B"
        f"  median {stats['median_doc_bytes']:,} B  seed {stats['seed']}",
        f"base docs {stats['base_docs']:,} (real {stats['base_real']:,}, synthetic {stats['base_synthetic']:,};"
        f" {stats['distinct_pages']:,} distinct pages -> {stats['real_chunks']:,} chunks ->"
        f" {stats['real_chunks_after_pruning']:,} after J>=0.5 pruning)",
        f"by source: {', '.join(f'{k} {v:,}' for k, v in stats['docs_by_source'].items())}",
        f"planted copies {stats['planted_copies']:,}:",
    ]
    for k, v in stats["planted_by_kind"].items():
        lines.append(f"  {k:<14} {v['n']:>6,}  true dup {v['true_dup']:>6,}  mean J {v['mean_jaccard']:.3f}"
                     f"  min J {v['min_jaccard']:.3f}")
    sizes = ", ".join(f"{k}: {v:,}" for k, v in stats["cluster_sizes"].items())
    lines.append(f"true clusters {stats['true_clusters']:,} (by size {sizes}),"
                 f" docs in clusters {stats['docs_in_true_clusters']:,}, docs to remove {stats['docs_to_remove']:,}")
    lines.append(f"candidate pairs {stats['candidate_pairs']:,} (LSH {stats['candidate_pairs_lsh']:,}),"
                 f" true edges {stats['true_edges']:,}, unplanted true edges {stats['unplanted_true_edges']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="directory for part-*.jsonl.gz and truth.json")
    ap.add_argument("--source", default=str(DEFAULT_SOURCE), help="devdocs.jsonl.gz")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--threshold", type=float, default=THRESHOLD, help="Jaccard of a true duplicate")
    args = ap.parse_args(argv)
    docs, truth = build_corpus(args.docs, args.seed, args.source, threshold=args.threshold)
    write_corpus(docs, truth, args.out, args.shards)
    print(format_stats(truth.stats))
    print(f"built in {truth.stats['build_seconds']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
