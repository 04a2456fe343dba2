"""Planted rows a curation pipeline must drop: boilerplate pages, junk pages and broken rows
(malformed JSON, missing or non-string or empty text, invalid UTF-8, an oversized text)
(scripts/make_sample.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

from sample_rows import Line, encode, record, synthetic
from sample_text import text_bytes

TOO_LARGE_CHARS = 300_000
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
