"""Quality rule families: tamis's four scorers against datatrove's four filters.

Loads devdocs documents (../shared/data/devdocs.jsonl.gz; whole documents, or with
``--cut N`` the documents of at least N characters cut to N, as bench/minhash_signatures.py
does), then in the same run:

* tamis: ``gopher_quality``, ``gopher_repetition``, ``c4_quality`` and ``fineweb_quality``
  (default configs: the published thresholds) on Arrow tables of ``--batch-rows`` rows, every
  rule of every family computed for every document. Timed together (the four operators one
  after another on each batch, sharing the batch's lines and words, as fused map stages do)
  and one family at a time (each building its own lines and words);
* datatrove 0.10.1: ``GopherQualityFilter``, ``GopherRepetitionFilter``, ``C4QualityFilter``
  and ``FineWebQualityFilter`` with their defaults, in a child process running
  ``--datatrove-python`` (a separate virtual environment: datatrove is not a tamis
  dependency). Each document goes through all four filters one after another (so their
  word cache is shared, datatrove's best case); C4 gets a copy, as it rewrites the text.

Speed is documents per CPU-second of the process (user + system), i.e. docs/s per core.
Peak memory: tamis's working memory per batch (numpy and Python objects under tracemalloc,
in an untimed pass, plus the Arrow pool's peak over the input tables); the child's peak RSS. Agreement: per family, the share of documents where
``quality_<family>_pass`` equals datatrove's keep decision; disagreements are listed by
class (datatrove's reason vs the tamis rules that fail) with example documents.

With ``--words N``, the words of every distinct whitespace chunk are also compared with
datatrove's (spaCy's), and the N most frequent differing chunks are listed.

Setup of the datatrove side (never in .venv):
``python3 -m venv /tmp/dtvenv && /tmp/dtvenv/bin/pip install datatrove==0.10.1 spacy regex``

Usage: ``.venv/bin/python bench/quality.py [--docs 4413] [--cut 0] [--batch-rows 1000]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import platform
import subprocess
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path

from devdocs import DEVDOCS

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.quality.c4 import C4Quality, C4QualityConfig  # noqa: E402
from operators.quality.fineweb import FineWebQuality, FineWebQualityConfig  # noqa: E402
from operators.quality.gopher import GopherQuality, GopherQualityConfig  # noqa: E402
from operators.quality.repetition import GopherRepetition, GopherRepetitionConfig  # noqa: E402
from operators.quality.words import split_chunk  # noqa: E402

FAMILIES = {
    "gopher": (GopherQuality, GopherQualityConfig),
    "repetition": (GopherRepetition, GopherRepetitionConfig),
    "c4": (C4Quality, C4QualityConfig),
    "fineweb": (FineWebQuality, FineWebQualityConfig),
}

CHILD = r"""
import gzip, json, resource, sys, time
from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from importlib.metadata import version
docs = json.load(sys.stdin)
filters = {"gopher": GopherQualityFilter(), "repetition": GopherRepetitionFilter(),
           "c4": C4QualityFilter(), "fineweb": FineWebQualityFilter()}
for f in filters.values():  # load spaCy before timing
    f.filter(Document(text="Warm up. The tokenizer loads here.", id="warm"))
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {name: [] for name in filters}
spent = dict.fromkeys(filters, 0.0)
start, wall = time.process_time(), time.perf_counter()
for i, text in enumerate(docs):
    for name, f in filters.items():
        t = time.process_time()
        try:
            result = f.filter(Document(text=text, id=str(i)))
        except Exception as error:  # a filter crashing on a document is a finding, not fatal
            result = (False, "error:" + type(error).__name__)
        spent[name] += time.process_time() - t
        keep, reason = (result, None) if isinstance(result, bool) else result
        out[name].append([bool(keep), reason])
json.dump({"decisions": out, "cpu_s": time.process_time() - start,
           "wall_s": time.perf_counter() - wall, "per_filter_s": spent,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_mb": rss_before / 1024, "version": version("datatrove")}, sys.stdout)
"""


WORDS_CHILD = r"""
import json, sys
from datatrove.utils.word_tokenizers import load_word_tokenizer
tokenizer = load_word_tokenizer("eng")
json.dump([tokenizer.word_tokenize(chunk) for chunk in json.load(sys.stdin)], sys.stdout)
"""


def compare_words(python: str, texts: list[str], show: int) -> None:
    """How often tamis's words equal datatrove's (spaCy's), per whitespace chunk."""
    counts = Counter(chunk for text in texts for chunk in text.split())
    chunks = list(counts)
    done = subprocess.run([python, "-c", WORDS_CHILD], input=json.dumps(chunks),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"datatrove words child failed ({python}):\n{done.stderr[-3000:]}")
    differ = [(counts[c], c, ref, split_chunk(c)) for c, ref in zip(chunks, json.loads(done.stdout))
              if list(split_chunk(c)) != ref]
    wrong = sum(count for count, *_ in differ)
    total = sum(counts.values())
    print(f"\nwords: {100 * (1 - wrong / total):.4f}% of {total:,} chunk occurrences "
          f"({len(chunks):,} distinct) get datatrove's words; {len(differ)} distinct chunks differ")
    for count, chunk, ref, ours in sorted(differ, reverse=True)[:show]:
        print(f"  {count:5d}x {chunk!r}: datatrove {ref}, tamis {list(ours)}")


def load_documents(count: int, cut: int) -> tuple[list[str], list[str], str]:
    """Up to ``count`` devdocs texts (whole, or those >= ``cut`` chars cut to ``cut``)."""
    if not DEVDOCS.exists():
        raise SystemExit(f"{DEVDOCS} is absent: this benchmark needs the shared devdocs corpus")
    texts, sources = [], []
    with gzip.open(DEVDOCS, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            text = row.get("text") or ""
            if cut and len(text) < cut:
                continue
            texts.append(text[:cut] if cut else text)
            sources.append(f"{row.get('source')}:{row.get('path')}")
            if len(texts) == count:
                break
    how = f"cut to {cut} chars (docs >= {cut})" if cut else "whole documents"
    return texts, sources, f"{DEVDOCS.name}, {len(texts)} docs, {how}"


_INSERTS = {
    "contractions": ["I'm sure we'd've gone, y'all. Ain't it?", "Dr. Smith (Calif.) said e.g. "
                     "3:00pm works :) <3", "They're gonna say cannot, dont, im, id and wed.",
                     "It's the U.S.A.'s rock'n'roll o'clock -- isn't it?"],
    "scripts": ["Это предложение. И ещё одно!", "这是一个句子。这是另一个句子！",
                "هذه جملة. وهذه جملة أخرى؟", "यह एक वाक्य है। यह दूसरा है।", "Αυτή είναι μια πρόταση."],
    "symbols": ["Copyright \u00a9 2024 \u2192 see \u2018quoted\u2019 text \u2605 \u00bfQu\u00e9? "
                "\u00a1S\u00ed! 25\u00b0C \u00a7 3 \u2022 item", "Price: \u20ac5, \u00a33, "
                "US$7 or 10km/h \u2014 roughly 50% (approx.) \u2026 okay\u2026"],
    "lorem": ["Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
              "This site uses cookies. Read our privacy policy.",
              "Please enable JavaScript to view the comments."],
}


def perturb(text: str, index: int) -> tuple[str, str]:
    """One deterministic perturbation of ``text`` (the kind cycles with ``index``): edge
    cases that devdocs rarely has, to expose where tamis and datatrove part."""
    rng = random.Random(index)
    lines = text.split("\n")
    kind = ("crlf", "citations", "contractions", "scripts", "symbols", "bullets", "repeat",
            "spaces", "long", "lorem")[index % 10]
    if kind == "crlf":
        return kind, "\r\n".join(lines)
    if kind == "citations":
        return kind, re.sub(r"\. ", lambda m: f".[{rng.randint(1, 99)}] " if rng.random() < 0.5
                            else ". ", text)
    if kind in _INSERTS:
        for _ in range(max(1, len(lines) // 4)):
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(_INSERTS[kind]))
    elif kind == "bullets":
        lines = [rng.choice(["\u2022 ", "- ", "* ", ""]) + line
                 + rng.choice(["", "", "\u2026", "..."]) for line in lines]
    elif kind == "repeat":
        paragraphs = text.split("\n\n")
        for _ in range(max(1, len(paragraphs) // 5)):
            paragraphs.insert(rng.randrange(len(paragraphs) + 1), rng.choice(paragraphs))
        return kind, "\n\n".join(paragraphs)
    elif kind == "spaces":
        lines = [re.sub(" ", lambda m: rng.choice([" ", " ", " ", "  ", "\t"]), line)
                 for line in lines]
    elif kind == "long":
        lines.insert(rng.randrange(len(lines) + 1), "x" * 1200 + " is a long word.")
        lines.insert(rng.randrange(len(lines) + 1), " ".join(lines)[:20000])
    return kind, "\n".join(lines)


def batches(texts: list[str], batch_rows: int) -> list[pa.Table]:
    """The texts as tables of ``batch_rows`` rows."""
    return [pa.table({"text": texts[i:i + batch_rows]}) for i in range(0, len(texts), batch_rows)]


def run_tamis(tables: list[pa.Table], families: list[str]) -> tuple[pa.Table, float]:
    """The given families' columns for every text, and the CPU seconds they took."""
    ops = [FAMILIES[name][0](FAMILIES[name][1]()) for name in families]
    start = time.process_time()
    out = []
    for table in tables:
        for op in ops:
            table = op(table)
        out.append(table.drop_columns(["text"]))  # keep the scores only: memory stays per batch
    return pa.concat_tables(out), time.process_time() - start


def working_memory(tables: list[pa.Table]) -> float:
    """Peak MiB of numpy and Python memory while scoring one batch (tracemalloc; untimed)."""
    peak = 0
    for table in tables:
        tracemalloc.start()
        run_tamis([table], list(FAMILIES))
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return peak / 2**20


def run_datatrove(python: str, texts: list[str], reuse: str | None) -> dict:
    """datatrove's decisions and timings, from a child process running ``python``.

    With ``reuse``, a result saved there for the very same texts is read instead (for
    iterating on tamis; figures to record come from a run without it).
    """
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    if reuse and Path(reuse).exists():
        saved = json.loads(Path(reuse).read_text())
        if saved.get("digest") == digest:
            print(f"(datatrove results reused from {reuse})")
            return saved
    done = subprocess.run([python, "-c", CHILD], input=json.dumps(texts), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"datatrove child failed ({python}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if reuse:
        Path(reuse).write_text(json.dumps({**result, "digest": digest}))
    return result


def failing_rules(table: pa.Table, family: str, row: int) -> str:
    """The tamis rules of ``family`` that fail for ``row``, or 'kept'."""
    prefix = f"quality_{family}_"
    failed = [name[len(prefix):-3] for name in table.column_names
              if name.startswith(prefix) and name.endswith("_ok") and not table[name][row].as_py()]
    return "+".join(failed) or "kept"


def signals(table: pa.Table, family: str, row: int) -> str:
    """The signal values of ``family`` for ``row``, compactly."""
    prefix = f"quality_{family}_"
    values = []
    for name in table.column_names:
        if name.startswith(prefix) and not name.endswith(("_ok", "_pass")):
            value = table[name][row].as_py()
            values.append(f"{name[len(prefix):]}={value:.4g}" if isinstance(value, float)
                          else f"{name[len(prefix):]}={value}")
    return " ".join(values)


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores, {model}, no GPU used; Python {platform.python_version()}, " \
           f"pyarrow {pa.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="at most this many documents")
    parser.add_argument("--cut", type=int, default=0, help="cut documents to this many chars")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--datatrove-python", default="/tmp/dtvenv/bin/python")
    parser.add_argument("--reuse-datatrove", metavar="PATH",
                        help="save datatrove's results here, or reuse them for the same texts")
    parser.add_argument("--stress", action="store_true",
                        help="perturb every document with one of ten edge-case edits")
    parser.add_argument("--words", type=int, metavar="N", default=0,
                        help="also compare words chunk by chunk with spaCy's; show N differences")
    parser.add_argument("--examples", type=int, default=2, help="examples per disagreement class")
    args = parser.parse_args()

    texts, sources, described = load_documents(args.docs, args.cut)
    if args.stress:
        edited = [perturb(text, i) for i, text in enumerate(texts)]
        texts = [text for _, text in edited]
        sources = [f"{kind} edit of {source}" for (kind, _), source in zip(edited, sources)]
        described += ", each perturbed (--stress)"
    mb = sum(len(t.encode()) for t in texts) / 1e6
    print(f"input: {described}, {mb:.1f} MB of UTF-8")
    print(f"machine: {machine()}")

    tables = batches(texts, args.batch_rows)
    pool = pa.default_memory_pool()
    held = pool.bytes_allocated()  # the input tables
    ours, cpu_all = run_tamis(tables, list(FAMILIES))
    arrow_peak = (pool.max_memory() - held) / 2**20
    per_family = {name: run_tamis(batches(texts, args.batch_rows), [name])[1] for name in FAMILIES}
    numpy_peak = working_memory(tables)
    theirs = run_datatrove(args.datatrove_python, texts, args.reuse_datatrove)

    n = len(texts)
    print(f"\n| what | tamis CPU s | tamis docs/s/core | datatrove {theirs['version']} CPU s "
          f"| datatrove docs/s/core | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| all four families | {cpu_all:.2f} | {n / cpu_all:,.0f} | {theirs['cpu_s']:.2f} "
          f"| {n / theirs['cpu_s']:,.1f} | {theirs['cpu_s'] / cpu_all:.1f}x |")
    for name, cpu in per_family.items():
        dt = theirs["per_filter_s"][name]
        print(f"| {name} alone (datatrove: its share) | {cpu:.2f} | {n / cpu:,.0f} | {dt:.2f} "
              f"| {n / dt:,.1f} | |")
    batch_mb = max(sum(len(t.encode()) for t in table["text"].to_pylist()) for table in tables)
    print(f"\npeak working memory of tamis per batch of {args.batch_rows} rows (largest batch: "
          f"{batch_mb / 1e6:.1f} MB of text): numpy+Python {numpy_peak:.0f} MiB (tracemalloc), "
          f"Arrow buffers {arrow_peak:.0f} MiB (pool peak over the input tables); datatrove "
          f"child peak RSS {theirs['peak_rss_mb']:.0f} MiB (spaCy, the documents and one "
          f"document's work)")
    print("\n| family | agreement | both keep | both drop | only datatrove keeps "
          "| only tamis keeps |")
    print("|---|---:|---:|---:|---:|---:|")
    classes: dict[str, Counter] = {}
    examples: dict[tuple[str, str], list[int]] = defaultdict(list)
    for name in FAMILIES:
        keep_dt = np.array([keep for keep, _ in theirs["decisions"][name]])
        keep_us = ours[f"quality_{name}_pass"].to_numpy(zero_copy_only=False)
        classes[name] = Counter()
        for row in np.flatnonzero(keep_dt != keep_us):
            reason = theirs["decisions"][name][row][1] or "kept"
            key = f"datatrove {reason} / tamis {failing_rules(ours, name, int(row))}"
            classes[name][key] += 1
            examples[(name, key)].append(int(row))
        agree = (keep_dt == keep_us).mean()
        print(f"| {name} | {100 * agree:.2f}% | {(keep_dt & keep_us).sum()} "
              f"| {(~keep_dt & ~keep_us).sum()} | {(keep_dt & ~keep_us).sum()} "
              f"| {(~keep_dt & keep_us).sum()} |")
    if args.words:
        compare_words(args.datatrove_python, texts, args.words)
    for name, counter in classes.items():
        if counter:
            print(f"\n{name}: disagreements by class")
        for key, count in counter.most_common():
            print(f"  {count:4d}  {key}")
            for row in examples[(name, key)][:args.examples]:
                print(f"        doc {row} ({sources[row]}): {signals(ours, name, row)}")


if __name__ == "__main__":
    main()
