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

Modules: bench/neardup_text.py (normalization, shingles, Jaccard, MinHash sketches),
bench/neardup_base.py (base documents), bench/neardup_copies.py (planted copies),
bench/neardup_truth.py (the exact ground truth and :func:`~neardup_truth.score`, both
described there); this module builds the corpus, writes and reads it.

CLI: ``python bench/neardup_corpus.py --docs 20000 --out /tmp/neardup`` writes
``part-NNNNN.jsonl.gz`` shards (fields id, text, source) and ``truth.json``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from neardup_base import Pruner, load_pages, real_chunks, synthesize
from neardup_copies import COPY_FRACTION, plant_copies, vocabulary
from neardup_text import NGRAM, Sketcher, shingle_hashes, utf8_len, words
from neardup_truth import THRESHOLD, GroundTruth, planted_stats, true_clusters

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "devdocs.jsonl.gz"


def build_corpus(n_docs: int, seed: int, source_path: str | Path = DEFAULT_SOURCE, *,
                 threshold: float = THRESHOLD) -> tuple[list[dict[str, Any]], GroundTruth]:
    """``n_docs`` documents (about 15 % planted copies) and their exact ground truth.

    Returns docs as dicts with id, text and source, in a seeded random order.
    """
    t0 = time.perf_counter()
    rng = random.Random(seed)
    sketch = Sketcher()
    n_copies = round(COPY_FRACTION * n_docs)
    n_base = n_docs - n_copies
    pages = load_pages(source_path)
    real, passages = real_chunks(pages)
    rng.shuffle(real)
    pruner = Pruner(sketch)
    pruner.add(real)
    n_real_kept = len(pruner.kept)
    share = Counter(b.source for b in pruner.kept)
    for _ in range(5):
        short = n_base - len(pruner.kept)
        if short <= 0:
            break
        want = {s: math.ceil(1.1 * short * c / n_real_kept) + 1 for s, c in share.items()}
        pruner.add(synthesize(want, passages, rng))
    bases = pruner.kept
    if len(bases) < n_base:
        raise RuntimeError(f"only {len(bases)} distinct base documents could be made; asked for {n_base}")
    bases = bases[:n_base]

    vocab = vocabulary((b.text, b.source) for b in bases[:2000])
    items: list[tuple[str, str, np.ndarray | None]] = [(b.text, b.source, b.hashes) for b in bases]
    families, planted = plant_copies(items, n_base, n_copies, vocab, rng)

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
    comps, truth_stats = true_clusters(docs, hashes, known, families, planted, threshold, sketch)
    for p in planted:
        p["copy"], p["original"] = ids[p.pop("_c")], ids[p.pop("_o")]

    order = list(range(len(docs)))
    rng.shuffle(order)
    docs = [docs[i] for i in order]
    clusters = sorted(sorted(ids[i] for i in c) for c in comps)
    sizes_b = [utf8_len(d["text"]) for d in docs]
    stats = {
        "docs": len(docs), "bytes": sum(sizes_b), "mean_doc_bytes": round(sum(sizes_b) / len(docs)),
        "median_doc_bytes": int(np.median(sizes_b)), "seed": seed,
        "distinct_pages": len(pages), "real_chunks": len(real), "real_chunks_after_pruning": n_real_kept,
        "base_docs": n_base, "base_real": sum(not b.synthetic for b in bases),
        "base_synthetic": sum(b.synthetic for b in bases),
        "docs_by_source": dict(sorted(Counter(d["source"] for d in docs).items())),
        "planted_copies": len(planted), "planted_by_kind": planted_stats(planted, threshold),
        "true_clusters": len(clusters), "docs_in_true_clusters": sum(map(len, clusters)),
        "docs_to_remove": sum(len(c) - 1 for c in clusters),
        "cluster_sizes": dict(sorted(Counter(map(len, clusters)).items())),
        **truth_stats, "build_seconds": round(time.perf_counter() - t0, 1),
    }
    return docs, GroundTruth(threshold, NGRAM, clusters, planted, stats)


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
