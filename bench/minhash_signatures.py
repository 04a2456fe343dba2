"""MinHash signature throughput: tamis's compiled path against datasketch per document.

Builds ~2,000 documents of ~4.5 KB (prefixes of ../shared/data/devdocs.jsonl.gz when it
exists, else synthetic text), computes word 5-gram MinHash signatures, and prints a table:

* the ``minhash_dedup.signature`` operator on a table of the texts (default config but
  ``num_perm``: normalize, shingle, MinHash, band hashes), the production path;
* tamis "fast": ``word_shingles(..., "fast")`` (sorted sets, as verification builds them) +
  ``signatures`` from raw text, and the ``signatures`` step alone;
* tamis "datasketch" scheme (bit-identical to datasketch's legacy MinHash), from raw text;
* datasketch ``MinHash.update_batch`` once per document over the same word 5-gram shingles,
  already built and UTF-8 encoded (shingle building is *not* charged to datasketch), with
  its legacy scheme and with its default scheme (affine32 since datasketch 2.0);
* the plain way end to end: the same normalization, shingle strings built in Python, then
  datasketch's default ``update_batch`` per document (the fair match of the first row).

Each figure is the best of ``--repeat`` runs, in wall-clock time or, with ``--clock cpu``,
in the process's CPU time (steadier when other work shares the machine; the load average
is printed). Everything measured runs on one core. Peak memory is measured in a separate run
under tracemalloc (numpy and Python allocations; Arrow buffers are not traced), over the
memory already held before the run (the input texts and, for the third row, the shingles).
A second table splits the operator's time by step (each step timed alone, best of
``--repeat``, on the previous step's output).

Usage: ``.venv/bin/python bench/minhash_signatures.py [--docs 2000] [--num-perm 112]``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

import datasketch
from datasketch import MinHash
from operators.dedup import minhash_math as mm
from operators.dedup.minhash_config import MinhashDedupConfig
from operators.dedup.minhash_signature import MinhashSignature
from operators.dedup.minhash_math import Permutations, signatures
from operators.dedup import hash_kernel
from operators.dedup.shingle_hash import window_hashes, word_hashes
from operators.dedup.shingling import normalize_for_near_dup, word_shingles
from operators.dedup.tokens import normalize_words
from devdocs import DEVDOCS, cut_texts

DOC_CHARS = 4500
NGRAM = 5


def load_documents(count: int) -> tuple[list[str], str]:
    """``count`` texts of ``DOC_CHARS`` characters, and where they came from."""
    texts = cut_texts(DOC_CHARS, count)
    if len(texts) == count:
        return texts, f"{DEVDOCS.name} (first {count} docs >= {DOC_CHARS} chars, cut)"
    if texts:
        return texts, f"{DEVDOCS.name} ({len(texts)} docs >= {DOC_CHARS} chars, cut)"
    rng = random.Random(0)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(20000)]
    texts = []
    for _ in range(count):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < DOC_CHARS:
            words.append(rng.choice(vocab))
        texts.append(" ".join(words)[:DOC_CHARS])
    return texts, "synthetic (random words from a 20k vocabulary)"


def shingle_bytes(texts: pa.Array) -> list[list[bytes]]:
    """Word 5-gram shingles of each document as UTF-8 bytes, as datasketch users feed them."""
    out = []
    for text in normalize_for_near_dup(texts, map_digits=False).to_pylist():
        words = text.split(" ") if text else []
        windows = range(max(len(words) - NGRAM + 1, 1)) if words else range(0)
        out.append([" ".join(words[i:i + NGRAM]).encode("utf-8") for i in windows])
    return out


CLOCK: Callable[[], float] = time.perf_counter


def best_of(repeat: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = CLOCK()
        func()
        times.append(CLOCK() - start)
    return min(times)


def peak_mb(func: Callable[[], object]) -> float:
    """Peak MB traced by tracemalloc while running ``func`` once."""
    tracemalloc.start()
    func()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--num-perm", type=int, default=112)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    texts, origin = load_documents(args.docs)
    batch = pa.array(texts, pa.string())
    n = len(texts)
    fast = Permutations(args.num_perm, args.seed, "fast")
    compat = Permutations(args.num_perm, args.seed, "datasketch")
    shingles = word_shingles(batch, NGRAM, "fast")
    encoded = shingle_bytes(batch)
    num_shingles = sum(len(s) for s in encoded)

    def datasketch_run(scheme: str) -> Callable[[], object]:
        def run() -> list[np.ndarray]:
            out = []
            for doc in encoded:
                m = MinHash(num_perm=args.num_perm, seed=args.seed, scheme=scheme)
                m.update_batch(doc)
                out.append(m.hashvalues)
            return out
        return run

    def plain_end_to_end() -> list[np.ndarray]:
        out = []
        for doc in shingle_bytes(batch):
            m = MinHash(num_perm=args.num_perm, seed=args.seed, scheme="affine32")
            m.update_batch(doc)
            out.append(m.hashvalues)
        return out

    operator = MinhashSignature(MinhashDedupConfig(num_perm=args.num_perm, lsh={"seed": args.seed}))
    table = pa.table({"text": batch})
    rows: list[tuple[str, Callable[[], object]]] = [
        ("tamis minhash_dedup.signature operator: text -> band hashes", lambda: operator(table)),
        ("tamis fast: text -> shingle sets -> signatures",
         lambda: signatures(word_shingles(batch, NGRAM, "fast"), fast)),
        ("tamis fast: signatures only (given shingles)", lambda: signatures(shingles, fast)),
        ("tamis datasketch scheme: text -> signatures",
         lambda: signatures(word_shingles(batch, NGRAM, "datasketch"), compat)),
        ("datasketch legacy: update_batch per doc", datasketch_run("legacy")),
        ("datasketch affine32 (default): update_batch per doc", datasketch_run("affine32")),
        ("plain way: text -> shingle bytes -> datasketch default", plain_end_to_end),
    ]
    seconds = {name: best_of(args.repeat, func) for name, func in rows}
    memory = {name: peak_mb(func) for name, func in rows}

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs "
          f"({len(os.sched_getaffinity(0))} usable), GPU: not used; load average at the end "
          f"{os.getloadavg()[0]:.1f}; clock: {args.clock}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, pyarrow {pa.__version__}, "
          f"datasketch {datasketch.__version__}")
    print(f"input: {n} docs, {sum(len(t.encode()) for t in texts) / n / 1000:.2f} KB mean UTF-8, "
          f"{origin}; word {NGRAM}-grams, {num_shingles / n:.0f} shingles/doc, "
          f"num_perm {args.num_perm}, best of {args.repeat}")
    print()
    reference = seconds["datasketch affine32 (default): update_batch per doc"]
    width = max(len(name) for name, _ in rows)
    print(f"| {'method':<{width}} | seconds |  docs/s | vs datasketch default | peak MB |")
    print(f"|{'-' * (width + 2)}|--------:|--------:|----------------------:|--------:|")
    for name, _ in rows:
        t = seconds[name]
        print(f"| {name:<{width}} | {t:7.3f} | {n / t:7.0f} | {reference / t:20.1f}x "
              f"| {memory[name]:7.0f} |")
    print()
    print_steps(batch, operator, args.repeat)
    legacy = seconds["datasketch legacy: update_batch per doc"]
    plain = seconds["plain way: text -> shingle bytes -> datasketch default"]
    end_to_end = seconds["tamis minhash_dedup.signature operator: text -> band hashes"]
    print()
    print(f"operator, text -> band hashes: {n / end_to_end:.0f} docs/s; {plain / end_to_end:.1f}x the "
          f"plain way end to end ({n / plain:.0f} docs/s); {reference / end_to_end:.1f}x and "
          f"{legacy / end_to_end:.1f}x datasketch default and legacy given pre-built shingles")


def print_steps(batch: pa.Array, operator: MinhashSignature, repeat: int) -> None:
    """Where the operator's time goes: each step alone, on the previous step's output."""
    words = normalize_words(batch, map_digits=False)
    spans = words.spans()
    tokens = word_hashes(spans)
    counts = spans.counts
    shingles = word_shingles(batch, NGRAM, "fast", as_sets=False)
    sigs = signatures(shingles, operator.perms)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("NFKC where needed + lowercase + words (tokens.normalize_words)",
         lambda: normalize_words(batch, map_digits=False)),
        ("5-gram shingle hashes, fused (hash_kernel.shingle_values)",
         lambda: hash_kernel.shingle_values(words.data, words.offsets, words.counts, NGRAM)),
        ("  the same in two steps: word spans (NormalizedText.spans)", words.spans),
        ("  word hashes from bytes (shingle_hash.word_hashes)", lambda: word_hashes(spans)),
        ("  5-gram window hashes (shingle_hash.window_hashes)", lambda: window_hashes(tokens, counts, NGRAM)),
        ("MinHash, uint32 affine (minhash_math.signatures)", lambda: signatures(shingles, operator.perms)),
        ("band hashes (minhash_math.band_hashes)", lambda: mm.band_hashes(sigs, operator.bands, operator.rows)),
    ]
    n = len(batch)
    width = max(len(name) for name, _ in steps)
    print(f"| {'operator step':<{width}} |     ms | us/doc |")
    print(f"|{'-' * (width + 2)}|-------:|-------:|")
    for name, func in steps:
        t = best_of(repeat, func)
        print(f"| {name:<{width}} | {t * 1000:6.1f} | {t / n * 1e6:6.1f} |")


if __name__ == "__main__":
    main()
