"""Build the demo's sample corpus under ``data/sample/`` from the devdocs dump.

The demo shows a curation pipeline (read -> exact dedup -> quality heuristics -> filters) on a
small corpus that ships with the repository. This script draws real documentation pages
from ``devdocs.jsonl.gz`` (text extracted from Debian documentation packages) and plants
known problems among them, so tests can check what each stage must catch:

* exact duplicates within a source (byte-identical, or differing only in case, whitespace,
  a trailing newline or NFKC-equivalent characters), and exact copies in another source;
* near duplicates (3-8% of words substituted or deleted), for the MinHash stage;
* boilerplate pages (navigation, cookie banners, footers) and junk pages (symbol soup, one
  line repeated, very short pages, mostly numbers);
* real non-English pages (Apache manual translations);
* broken rows: malformed JSON, missing text, non-string text, invalid UTF-8, empty text,
  and a text over the demo's ``max_text_bytes``.

It writes one ``<source>.jsonl.gz`` per source, ``expected.json`` (the ground truth: every
planted row with its file and 0-based line) and ``README.md``. Output is deterministic:
fixed seed, sorted inputs, gzip with ``mtime=0``, so rerunning regenerates identical bytes.

Usage: ``python scripts/make_sample.py [--source PATH] [--out DIR]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "devdocs.jsonl.gz"
DEFAULT_OUT = REPO_ROOT / "data" / "sample"

SEED = 20240611
SOURCES = ("apache2-doc", "sqlite3-doc", "python-django-doc", "git-doc")
BASE_COUNTS = {"apache2-doc": 140, "sqlite3-doc": 110, "python-django-doc": 110, "git-doc": 60}
LICENSES = {
    "apache2-doc": "Apache-2.0",
    "sqlite3-doc": "public domain",
    "python-django-doc": "BSD-3-Clause",
    "git-doc": "GPL-2.0",
}
MIN_BYTES = 1_000
PREFERRED_MAX_BYTES = 30_000
MAX_BYTES = 60_000
SIMILARITY_LIMIT = 0.5  # word 5-shingle Jaccard; real docs above it with another are skipped
DEMO_MAX_TEXT_BYTES = 200_000
TOO_LARGE_CHARS = 300_000
NON_ENGLISH_LANGS = ("de", "es", "fr", "ja", "pt-br", "ru", "tr", "zh-cn")  # ko is mojibake
EN_STOPWORDS = frozenset(
    "the and of to is in that for with this are be you it on as or by can not".split())

# (original source, source of the file the copy goes into)
CROSS_SOURCE_PLAN = (
    ("sqlite3-doc", "git-doc"),
    ("apache2-doc", "python-django-doc"),
    ("python-django-doc", "sqlite3-doc"),
    ("git-doc", "apache2-doc"),
    ("sqlite3-doc", "python-django-doc"),
)
EXACT_ORIGINALS_PER_SOURCE = {"apache2-doc": 5, "sqlite3-doc": 4, "python-django-doc": 4,
                              "git-doc": 3}  # the first of each source gets two copies
EXACT_VARIANTS = ("identical", "upper_ascii", "extra_whitespace", "trailing_newline",
                  "identical", "padded", "nfkc_ligature", "upper_and_whitespace")
NEAR_PER_SOURCE = {"apache2-doc": 4, "sqlite3-doc": 4, "python-django-doc": 4, "git-doc": 3}
NEAR_MIN_WORDS = 200
NEAR_VOCAB = ("system", "value", "request", "option", "server", "module", "table", "file",
              "example", "default", "version", "user", "query", "command", "object", "list",
              "string", "field", "index", "path")

BOILERPLATE_PAGES = (
    "Home | About | Contact | Blog\nAccept cookies\n"
    "Copyright 2024 Example Corp. All rights reserved.",
    "We use cookies to improve your experience on our site.\n"
    "Accept all cookies | Reject non-essential cookies | Cookie settings",
    "Skip to main content\nMenu\nSearch\nSign in | Register\n"
    "Privacy Policy | Terms of Service",
    "Home > Products > Documentation\nPrevious | Next | Up\n"
    "Was this page helpful? Yes | No",
    "Subscribe to our newsletter\nEnter your email address\nSubscribe\n"
    "Follow us on Facebook | Twitter | LinkedIn",
    "About Us | Careers | Press | Investors\nContact sales\n"
    "Copyright (c) 2019-2024 Acme Software Ltd.",
    "This site uses cookies. By continuing to browse the site you are agreeing to our use "
    "of cookies.\nOK | Learn more",
    "Login | Logout | My Account | Shopping Cart (0)\nFree shipping on orders over $50\n"
    "Back to top",
    "Sitemap | Accessibility | Legal notice | Imprint\n"
    "All trademarks are property of their respective owners.",
    "Share this page: Email | Print | Facebook | Twitter\nRelated links\n"
    "Powered by WordPress | Theme by Example Themes",
)
VERY_SHORT_PAGES = (
    "Page not found (404).",
    "Loading, please wait...",
    "See also: installation guide, configuration reference, FAQ.",
)
REPEATED_LINES = (
    "Click here to subscribe to our newsletter and get 10% off!",
    "buy cheap widgets online best price fast delivery",
)
SYMBOLS = "#$%&*@!~^+=<>{}[]|\\/;:?`"


@dataclass
class Line:
    """One output line, and its ground-truth entry when it was planted."""

    data: bytes
    category: str | None = None  # None for a real document kept as is
    info: dict = field(default_factory=dict)


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


def record(doc_id: str, text: object, source: str, url: str) -> dict:
    return {"id": doc_id, "text": text, "source": source, "url": url}


def encode(row: dict) -> bytes:
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


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


def upper_ascii(text: str) -> str:
    return text.translate({c: c - 32 for c in range(ord("a"), ord("z") + 1)})


def extra_whitespace(text: str) -> str:
    return text.replace(" ", "  ").replace("\n", " \n\t")


VARIANTS: dict[str, Callable[[str], str]] = {
    "identical": lambda t: t,
    "upper_ascii": upper_ascii,
    "extra_whitespace": extra_whitespace,
    "trailing_newline": lambda t: t + "\n",
    "padded": lambda t: "  \n" + t + " \n\n",
    "nfkc_ligature": lambda t: t.replace("fi", "\ufb01"),  # LATIN SMALL LIGATURE FI
    "upper_and_whitespace": lambda t: extra_whitespace(upper_ascii(t)),
}


def exact_variant(text: str, start: int, used: set[str]) -> tuple[str, str]:
    """The first variant from ``EXACT_VARIANTS[start]`` on that applies to ``text``.

    A variant applies when it is not in ``used`` (the variants of this text's other copies),
    changes the text (or is ``identical``) and keeps its normalized form; e.g.
    ``nfkc_ligature`` needs an "fi" to replace.
    """
    for offset in range(len(EXACT_VARIANTS)):
        name = EXACT_VARIANTS[(start + offset) % len(EXACT_VARIANTS)]
        copy = VARIANTS[name](text)
        if name not in used and normalize(copy) == normalize(text) and (
                name == "identical" or copy != text):
            used.add(name)
            return name, copy
    raise AssertionError("no exact-duplicate variant applies")


def plant_exact(originals: Sequence[Sequence[dict]]) -> list[Line]:
    """In-source copies of each source's originals; the first of each source gets two."""
    lines, variant_index = [], 0
    for position, doc in ((i, d) for group in originals for i, d in enumerate(group)):
        copies, used = (2 if position == 0 else 1), set()
        for n in range(1, copies + 1):
            variant, text = exact_variant(doc["text"], variant_index, used)
            variant_index += 1
            copy_id = f"{doc['id']}-dup{n}"
            lines.append(Line(encode(record(copy_id, text, doc["source"], doc["path"])),
                              "exact_duplicate_copies",
                              {"id": copy_id, "original_id": doc["id"], "variant": variant,
                               "byte_identical": text == doc["text"]}))
    return lines


def plant_cross_source(doc: dict, target: str) -> Line:
    copy_id = f"{doc['id']}-xsrc1"
    return Line(encode(record(copy_id, doc["text"], target, doc["path"])), "cross_source_copies",
                {"id": copy_id, "original_id": doc["id"], "original_file": file_name(doc["source"]),
                 "source": target})


def perturb(text: str, rng: random.Random) -> tuple[str, float]:
    """Substitute or delete 3-8% of the words, in runs of 1-3; returns text, edited fraction."""
    tokens = re.split(r"(\s+)", text)
    word_positions = [i for i in range(0, len(tokens), 2) if tokens[i]]
    target = max(1, round(len(word_positions) * rng.uniform(0.03, 0.08)))
    edited: set[int] = set()
    while len(edited) < target:
        start = rng.randrange(len(word_positions))
        for k in range(start, min(start + rng.randint(1, 3), len(word_positions))):
            if len(edited) < target:
                edited.add(k)
    for k in sorted(edited):
        i = word_positions[k]
        if rng.random() < 0.5:
            tokens[i] = ""
            if i + 1 < len(tokens):
                tokens[i + 1] = ""  # drop the following whitespace with the word
        else:
            choices = [w for w in NEAR_VOCAB if w != tokens[i].lower()]
            tokens[i] = rng.choice(choices)
    return "".join(tokens).strip(), len(edited) / len(word_positions)


def plant_near(doc: dict, rng: random.Random) -> Line:
    text, fraction = perturb(doc["text"], rng)
    if normalize(text) == normalize(doc["text"]):
        raise AssertionError(f"near duplicate of {doc['id']} is an exact duplicate")
    copy_id = f"{doc['id']}-near1"
    similarity = jaccard(shingles(text), shingles(doc["text"]))
    return Line(encode(record(copy_id, text, doc["source"], doc["path"])), "near_duplicates",
                {"id": copy_id, "original_id": doc["id"], "edit_fraction": round(fraction, 4),
                 "jaccard_word5": round(similarity, 4)})


def synthetic(doc_id: str, text: object, source: str) -> bytes:
    return encode(record(doc_id, text, source, f"/synthetic/{doc_id}.html"))


def boilerplate_lines(sources: Sequence[str]) -> list[Line]:
    lines = []
    for n, text in enumerate(BOILERPLATE_PAGES, start=1):
        if len(text.split()) >= 50:
            raise AssertionError(f"boilerplate page {n} has 50 words or more")
        doc_id = f"planted-boilerplate-{n:02d}"
        source = sources[(n - 1) % len(sources)]
        lines.append(Line(synthetic(doc_id, text, source), "boilerplate",
                          {"id": doc_id, "words": len(text.split())}))
    return lines


def symbol_soup(rng: random.Random) -> str:
    tokens = ["".join(rng.choice(SYMBOLS) for _ in range(rng.randint(2, 8))) for _ in range(80)]
    return " ".join(tokens)


def numbers_page(rng: random.Random) -> str:
    rows = []
    for _ in range(40):
        cells = [f"{rng.randint(0, 9999)}.{rng.randint(0, 99):02d}" for _ in range(6)]
        rows.append(" | ".join(cells) + " ;; -- %")
    return "\n".join(rows)


def junk_pages(rng: random.Random) -> list[tuple[str, str]]:
    """(kind, text) pairs for the junk pages."""
    pages = [("symbol_soup", symbol_soup(rng)), ("symbol_soup", symbol_soup(rng))]
    pages += [("repeated_line", "\n".join([line] * 200)) for line in REPEATED_LINES]
    pages += [("very_short", text) for text in VERY_SHORT_PAGES]
    pages += [("numbers_punctuation", numbers_page(rng)) for _ in range(3)]
    return pages


def junk_lines(sources: Sequence[str], rng: random.Random) -> list[Line]:
    lines = []
    for n, (kind, text) in enumerate(junk_pages(rng), start=1):
        doc_id = f"planted-junk-{n:02d}"
        source = sources[(n + 1) % len(sources)]
        lines.append(Line(synthetic(doc_id, text, source), "junk", {"id": doc_id, "kind": kind}))
    return lines


def too_large_text(docs: Sequence[dict]) -> str:
    """Real debian-reference paragraphs (not otherwise in the sample), repeated past the cap."""
    paragraphs: list[str] = []
    for doc in (d for d in docs if d["source"] == "debian-reference-en"):
        for paragraph in doc["text"].split("\n\n"):
            if len(paragraph.split()) >= 20:
                paragraphs.append(paragraph.strip())
            if sum(len(p) for p in paragraphs) > 20_000:
                break
        if sum(len(p) for p in paragraphs) > 20_000:
            break
    cycle = "\n\n".join(paragraphs)
    repeats = TOO_LARGE_CHARS // len(cycle) + 1
    return "\n\n".join([cycle] * repeats)


def broken_lines(docs: Sequence[dict]) -> dict[str, list[Line]]:
    """Broken rows per target source: each kind at least once, spread over the files."""
    truncated = json.dumps(record("planted-truncated-01", docs[0]["text"][:400], "sqlite3-doc",
                                  "/synthetic/planted-truncated-01.html")).encode("ascii")[:180]
    truncated2 = b'{"id": "planted-truncated-02", "text": "Unterminated row, the writer crashed'
    bad_utf8 = (b'{"id": "planted-bad-utf8", "text": "caf\xe9 au lait, cr\xe8me br\xfbl\xe9e", '
                b'"source": "apache2-doc", "url": "/synthetic/planted-bad-utf8.html"}')
    big = too_large_text(docs)
    missing = {"id": "planted-missing-text", "source": "git-doc",
               "url": "/synthetic/planted-missing-text.html"}

    def line(data: bytes, kind: str, doc_id: str | None, **extra: object) -> Line:
        return Line(data, "broken_rows", {"kind": kind, "id": doc_id, **extra})

    return {
        "apache2-doc": [line(bad_utf8, "invalid_utf8", None, raw_id="planted-bad-utf8")],
        "sqlite3-doc": [
            line(truncated, "malformed_json", None),
            line(synthetic("planted-empty-text", "", "sqlite3-doc"), "empty_text",
                 "planted-empty-text"),
        ],
        "python-django-doc": [
            line(synthetic("planted-numeric-text", 4242, "python-django-doc"),
                 "non_string_text", "planted-numeric-text"),
            line(synthetic("planted-too-large", big, "python-django-doc"), "text_too_large",
                 "planted-too-large", chars=len(big), bytes=text_bytes(big)),
        ],
        "git-doc": [
            line(encode(missing), "missing_text", "planted-missing-text"),
            line(truncated2, "malformed_json", None),
        ],
    }


def file_name(source: str) -> str:
    return f"{source}.jsonl.gz"


def take(pool: list[dict], source: str, n: int, min_words: int = 0) -> list[dict]:
    """Remove and return ``n`` docs of ``source`` (of ``min_words`` or more) from ``pool``."""
    chosen = sorted((d for d in pool if d["source"] == source
                     and len(d["text"].split()) >= min_words),
                    key=lambda d: stable_key("plant", d["id"]))[:n]
    for doc in chosen:
        pool.remove(doc)
    return chosen


def build(docs: Sequence[dict]) -> dict[str, list[Line]]:
    """All output lines per source, unshuffled."""
    screen = Screen()
    non_english = pick_non_english(docs, screen)
    base = {s: pick_base(docs, s, BASE_COUNTS[s], screen) for s in SOURCES}
    files: dict[str, list[Line]] = {s: [Line(encode(record(d["id"], d["text"], s, d["path"])))
                                        for d in base[s]] for s in SOURCES}
    for doc in non_english:
        files["apache2-doc"].append(Line(
            encode(record(doc["id"], doc["text"], doc["source"], doc["path"])), "non_english",
            {"id": doc["id"], "lang": doc["lang"], "url": doc["path"]}))

    unused = [d for s in SOURCES for d in base[s]]
    for line in plant_exact([take(unused, s, EXACT_ORIGINALS_PER_SOURCE[s]) for s in SOURCES]):
        files[json.loads(line.data)["source"]].append(line)
    for origin, target in CROSS_SOURCE_PLAN:
        files[target].append(plant_cross_source(take(unused, origin, 1)[0], target))
    rng = random.Random(SEED)
    for source in SOURCES:
        for doc in take(unused, source, NEAR_PER_SOURCE[source], NEAR_MIN_WORDS):
            files[source].append(plant_near(doc, rng))

    for line in boilerplate_lines(SOURCES) + junk_lines(SOURCES, rng):
        files[json.loads(line.data)["source"]].append(line)
    for source, lines in broken_lines(docs).items():
        files[source] += lines
    return files


def shuffled(source: str, lines: Sequence[Line]) -> list[Line]:
    return sorted(lines, key=lambda ln: stable_key("order", source, ln.data.decode("latin-1")))


def write_gzip(path: Path, lines: Iterable[bytes]) -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for data in lines:
            gz.write(data + b"\n")
    path.write_bytes(buffer.getvalue())


def ground_truth(files: dict[str, list[Line]]) -> dict:
    """expected.json content from the shuffled files."""
    categories = ("exact_duplicate_copies", "cross_source_copies", "near_duplicates",
                  "boilerplate", "junk", "non_english")
    truth: dict = {name: [] for name in categories}
    broken: dict[str, list] = {k: [] for k in ("malformed_json", "missing_text",
                                               "non_string_text", "invalid_utf8",
                                               "empty_text", "text_too_large")}
    for source, lines in files.items():
        for number, line in enumerate(lines):
            if line.category is None:
                continue
            entry = {**line.info, "file": file_name(source), "line": number}
            if line.category == "broken_rows":
                broken[entry.pop("kind")].append(entry)
            else:
                truth[line.category].append(entry)
    for entries in (*truth.values(), *broken.values()):
        entries.sort(key=lambda e: (e["file"], e["line"]))
    total = sum(len(lines) for lines in files.values())
    n_broken = sum(len(v) for v in broken.values())
    counts = {**{k: len(v) for k, v in truth.items()},
              **{f"broken_rows.{k}": len(v) for k, v in broken.items()}}
    exact_copies = len(truth["exact_duplicate_copies"])
    removed_exact = exact_copies + len(truth["cross_source_copies"])
    return {
        "generator": "python scripts/make_sample.py",
        "seed": SEED,
        "normalization": "NFKC, lowercase, whitespace runs collapsed to one space, stripped",
        "demo_max_text_bytes": DEMO_MAX_TEXT_BYTES,
        "files": {file_name(s): {"source": s, "lines": len(v)} for s, v in files.items()},
        "total_lines": total,
        "counts": counts,
        "derived": {
            "real_documents": total - n_broken - counts["boilerplate"] - counts["junk"]
            - removed_exact - counts["near_duplicates"],
            "broken_rows": n_broken,
            "valid_rows": total - n_broken,
            "after_exact_dedup_scope_source": total - n_broken - exact_copies,
            "after_exact_dedup_scope_global": total - n_broken - removed_exact,
        },
        **truth,
        "broken_rows": broken,
    }


README_TEMPLATE = """# Sample corpus

The demo's input: {total} JSON lines in {n_files} gzip files, one per source
(`<source>.jsonl.gz`), each line `{{"id", "text", "source", "url"}}`. Generated by
`python scripts/make_sample.py` (deterministic; rerunning it regenerates these files byte for
byte); do not edit by hand. `expected.json` is the ground truth the tests check against: every
planted row with its file and 0-based line number.

## Where the text comes from

Plain text extracted from the HTML documentation shipped in Debian packages; `url` is the
installed path of the page. Licenses of the packages' documentation:

| Source (Debian package) | License | Lines |
|---|---|---|
{source_rows}

Real pages were picked with a fixed seed, preferring 1-30 KB of text (none over 60 KB), one
language version per Apache page, and no two real pages with a word 5-shingle Jaccard
similarity over {limit} (so the only duplicates are the planted ones). The oversized row
repeats paragraphs of the Debian Reference (`debian-reference-en`, GPL-2.0+).

## Planted rows

| Category | Count | What |
|---|---|---|
{planted_rows}
"""

CATEGORY_NOTES = {
    "exact_duplicate_copies": "copies in the same source: byte-identical, or differing only "
                              "in case, whitespace, trailing newline, or NFKC-equivalent "
                              "characters (ids `<original>-dupN`)",
    "cross_source_copies": "byte-identical copies placed in another source's file "
                           "(ids `<original>-xsrc1`)",
    "near_duplicates": "3-8% of words substituted or deleted; not exact duplicates "
                       "(ids `<original>-near1`)",
    "boilerplate": "short navigation / cookie banner / footer pages, under 50 words",
    "junk": "symbol soup, one line repeated 200 times, 3-10 word pages, mostly numbers",
    "non_english": "real translated Apache manual pages (de, es, fr, ja, pt-br, ru, tr, zh-cn)",
    "broken_rows.malformed_json": "truncated JSON",
    "broken_rows.missing_text": "no `text` field",
    "broken_rows.non_string_text": "`text` is a number",
    "broken_rows.invalid_utf8": "line is not valid UTF-8",
    "broken_rows.empty_text": "`text` is `\"\"`",
    "broken_rows.text_too_large": f"`text` over {TOO_LARGE_CHARS:,} characters (the demo's "
                                  f"`max_text_bytes` is {DEMO_MAX_TEXT_BYTES:,})",
}


def readme(truth: dict) -> str:
    source_rows = "\n".join(
        f"| {s} | {LICENSES[s]} | {truth['files'][file_name(s)]['lines']} |"
        for s in SOURCES)
    planted_rows = "\n".join(f"| {k} | {v} | {CATEGORY_NOTES[k]} |"
                             for k, v in truth["counts"].items())
    return README_TEMPLATE.format(total=truth["total_lines"], n_files=len(truth["files"]),
                                  source_rows=source_rows, limit=SIMILARITY_LIMIT,
                                  planted_rows=planted_rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="devdocs.jsonl.gz (default: ../shared/data/ next to the repo)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output directory (default: data/sample in the repo)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.source.is_file():
        sys.exit(f"make_sample: source file not found: {args.source} (pass --source PATH)")
    docs = load_docs(args.source)
    files = {s: shuffled(s, lines) for s, lines in build(docs).items()}
    args.out.mkdir(parents=True, exist_ok=True)
    for source, lines in files.items():
        write_gzip(args.out / file_name(source), (line.data for line in lines))
    truth = ground_truth(files)
    (args.out / "expected.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    (args.out / "README.md").write_text(readme(truth), encoding="utf-8")
    size = sum((args.out / file_name(s)).stat().st_size for s in SOURCES)
    print(f"make_sample: wrote {truth['total_lines']} lines in {len(files)} files "
          f"({size / 1e6:.2f} MB compressed) to {args.out}")


if __name__ == "__main__":
    main()
