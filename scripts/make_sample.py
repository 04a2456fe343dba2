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
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

from sample_bad_rows import boilerplate_lines, broken_lines, junk_lines
from sample_duplicates import plant_cross_source, plant_exact, plant_near
from sample_output import ground_truth, readme, shuffled, write_gzip
from sample_rows import SOURCES, Line, encode, file_name, record
from sample_select import Screen, load_docs, pick_base, pick_non_english
from sample_text import SEED, stable_key

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data" / "devdocs.jsonl.gz"
DEFAULT_OUT = REPO_ROOT / "data" / "sample"

BASE_COUNTS = {"apache2-doc": 140, "sqlite3-doc": 110, "python-django-doc": 110, "git-doc": 60}
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
NEAR_PER_SOURCE = {"apache2-doc": 4, "sqlite3-doc": 4, "python-django-doc": 4, "git-doc": 3}
NEAR_MIN_WORDS = 200


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
