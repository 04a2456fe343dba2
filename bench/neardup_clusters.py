"""``minhash_dedup.keep`` against the size of one candidate component (issue 22).

Plants one component of N near-copies of a devdocs page and times the keep step on it, in
this process (no Ray: the figure is the verification's own cost):

* **chains**: copy ``i + 1`` is copy ``i`` with ``--edits`` word substitutions, so
  neighbours are near-copies and the Jaccard decays along a chain (far ends are unlike);
  the component is ``--chains`` such chains from one page;
* **stars**: every copy is the page with ``--edits`` substitutions of its own, so copies
  are near-copies of the page and, mostly, of each other.

For each shape and size it prints keep's seconds, its exact-Jaccard checks
(``verified_pairs``) and the checks per candidate edge, where the candidate edges are the
star edges ``buckets`` emits (each band bucket's members to its smallest id: what the
manifest counts, and issue 22's measure). The LSH pairs (for every band, the pairs of
documents sharing its hash, counted per band, not listed) are printed too. The plain way for scale: the
signature step (shingles, MinHash, band hashes) on the same documents, which any dedup
pays once per document.

``--max-seconds`` skips the sizes after one whose keep took longer (today's keep is
quadratic in a component's keepers).

``--pipeline`` runs the same documents through ``minhash_dedup`` + ``filter`` on a local
Ray (``bench/neardup.run_tamis``: JSONL shards in, committed output out) and prints each
stage's wall seconds and keep's share of the run: the whole component is one group, so
keep runs on one core while the map stages use all of them.

Usage: ``.venv/bin/python bench/neardup_clusters.py [--sizes 1000 10000 100000]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devdocs import DEVDOCS  # noqa: E402
from quality import machine  # noqa: E402

from operators.dedup.minhash_config import BANDS, COMPONENT, MinhashDedupConfig  # noqa: E402
from operators.dedup.minhash_signature import MinhashSignature  # noqa: E402
from operators.dedup.near_keep import VerifyKeep  # noqa: E402


def base_words(min_words: int) -> list[str]:
    """The words of the first devdocs page with at least ``min_words`` words."""
    with gzip.open(DEVDOCS, "rt", encoding="utf-8") as f:
        for line in f:
            words = (json.loads(line).get("text") or "").split()
            if len(words) >= min_words:
                return words[:min_words * 2]
    raise SystemExit(f"no devdocs page has {min_words} words")


def edited(words: list[str], edits: int, rng: random.Random) -> list[str]:
    out = list(words)
    for _ in range(edits):
        out[rng.randrange(len(out))] = f"w{rng.randrange(10**9)}"
    return out


def plant(shape: str, size: int, words: list[str], edits: int, chains: int, seed: int) -> list[str]:
    """``size`` texts of one planted component."""
    rng = random.Random(seed)
    if shape == "stars":
        return [" ".join(words)] + [" ".join(edited(words, edits, rng)) for _ in range(size - 1)]
    texts: list[str] = []
    per_chain = -(-size // chains)
    for _ in range(chains):
        current = words
        for _ in range(min(per_chain, size - len(texts))):
            texts.append(" ".join(current))
            current = edited(current, edits, rng)
    return texts


def lsh_edges(bands: np.ndarray) -> tuple[int, int]:
    """(pairs sharing a band bucket, counted once per band; star edges ``buckets`` emits)."""
    pairs = stars = 0
    for b in range(bands.shape[1]):
        _, counts = np.unique(bands[:, b], return_counts=True)
        pairs += int((counts * (counts - 1) // 2).sum())
        stars += int((counts - 1).sum())
    return pairs, stars


def measure(texts: list[str], config: MinhashDedupConfig) -> dict[str, float]:
    table = pa.table({"id": [f"d{i:07d}" for i in range(len(texts))], "text": texts})
    started = time.process_time()
    signed = MinhashSignature(config)(table)
    sign_s = time.process_time() - started
    bands = np.asarray(signed[BANDS].combine_chunks().flatten()).reshape(len(texts), -1)
    pairs, stars = lsh_edges(bands)
    keep = VerifyKeep(config)
    started = time.process_time()
    marks = keep(signed.append_column(COMPONENT, pa.array(np.zeros(len(texts), dtype=np.int64))))
    keep_s = time.process_time() - started
    metrics = keep.metrics()
    return {"sign_s": sign_s, "keep_s": keep_s, "verified": metrics["verified_pairs"], "skipped": metrics.get("prefiltered_pairs", 0), "pairs": pairs,
            "stars": stars, "kept": int(np.asarray(marks["dedup_minhash_keep"]).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--shapes", nargs="+", default=["chains", "stars"], choices=["chains", "stars"])
    parser.add_argument("--words", type=int, default=400, help="words of the planted page")
    parser.add_argument("--edits", type=int, default=3, help="word substitutions per copy")
    parser.add_argument("--chains", type=int, default=10, help="chains per component (shape chains)")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--pipeline", action="store_true", help="also time a whole tamis run per size")
    parser.add_argument("--workdir", default="/tmp/neardup_clusters", help="corpus and store of --pipeline")
    parser.add_argument("--max-hops", type=lambda v: None if v == "any" else int(v), default=2,
                        help="minhash_dedup max_hops ('any': no bound)")
    args = parser.parse_args()
    config = MinhashDedupConfig(max_hops=args.max_hops)
    words = base_words(args.words)
    print(f"machine: {machine()}")
    print(f"planted: the first {len(words)} words of a devdocs page; {args.edits} substitutions per copy; "
          f"{config.banding()[0]} bands x {config.banding()[1]} rows, threshold {config.threshold}")
    print("\n| shape | documents | kept | LSH pairs | star edges | keep CPU s | exact checks | checks per LSH pair "
          "| checks per star edge | signature CPU s (the plain way) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    pipelines: list[tuple[str, int, dict[str, Any]]] = []
    for shape in args.shapes:
        for size in sorted(args.sizes):
            texts = plant(shape, size, words, args.edits, args.chains, seed=size)
            r = measure(texts, config)
            print(f"| {shape} | {size:,} | {r['kept']:,} | {r['pairs']:,} | {r['stars']:,} | {r['keep_s']:.2f} "
                  f"| {r['verified']:,} | {r['verified'] / max(r['pairs'], 1):.3f} "
                  f"| {r['verified'] / max(r['stars'], 1):.2f} | {r['sign_s']:.2f} |", flush=True)
            if args.pipeline:
                pipelines.append((shape, size, run_pipeline(texts, Path(args.workdir) / f"{shape}-{size}", args)))
            if r["keep_s"] > args.max_seconds:
                print(f"| {shape} | larger sizes skipped: keep took over {args.max_seconds:.0f} s | | | | | | | | |")
                break

    if pipelines:
        print("\n| shape | documents | run s | keep s | keep share | stages (wall s) |")
        print("|---|---:|---:|---:|---:|---|")
        for shape, size, run in pipelines:
            walls = {st["name"]: st.get("seconds") or 0.0 for st in run["stages"]}
            keep = walls.get("minhash_dedup.keep", 0.0)
            detail = ", ".join(f"{name.removeprefix('minhash_dedup.')} {wall:.1f}" for name, wall in walls.items())
            print(f"| {shape} | {size:,} | {run['seconds']:.1f} | {keep:.1f} | {keep / run['seconds']:.0%} | {detail} |")


def run_pipeline(texts: list[str], folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``texts`` as one source's JSONL shards through ``minhash_dedup`` + ``filter``."""
    import shutil

    from neardup import run_tamis

    shutil.rmtree(folder, ignore_errors=True)
    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    shards = 8
    for n in range(shards):
        with gzip.open(corpus / f"part-{n:05d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for i in range(n, len(texts), shards):
                f.write(json.dumps({"id": f"d{i:07d}", "text": texts[i], "source": "planted"}) + "\n")
    removed, seconds, stats = run_tamis(corpus, folder / "store", max_hops=args.max_hops, run_id="clusters")
    return {"seconds": seconds, "removed": len(removed), **stats}


if __name__ == "__main__":
    main()
