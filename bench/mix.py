"""Mixing: tamis's mix operators against pandas (groupby + ``DataFrame.sample`` per group).

Replicates devdocs documents (../shared/data/devdocs.jsonl.gz) to ``--docs`` documents of
three sources (each copy its own id; sources by a hash of the id: about 60 / 25 / 15 %),
and in the same run times, in CPU seconds of this process (user + system, so docs/s per
core):

* counting: ``mix.tokens`` with the bytes-per-token estimate over every document, in
  Arrow batches of ``--batch-rows``, against pandas' ``str.len() / 4`` on the same texts
  (characters, the pandas idiom); and with a tokenizer (the bundled MiniLM
  ``tokenizer.json``, through ``tokenizers``) over the first ``--tokenizer-docs``
  documents, against ``Tokenizer.encode_batch`` called directly on all of them at once;
* a 3-source, 2-phase mix (main: weights 0.6/0.25/0.15 of half the tokens; anneal: weights
  0.2/0.3/0.5 of a tenth of them), as one ``mix`` config with two phases: the ``mix.plan``
  fit over the batches' id, source and tokens, then ``mix.sample`` over the batches with
  their text (each batch's text is built outside the timing, so that a million texts need
  not be held twice), against pandas:
  ``groupby(source).sum()`` for the plan (with the same targets) and, per group,
  ``DataFrame.sample(frac=target / available, replace=frac > 1, random_state=seed)``.

Plan + sample are timed twice: on id, source and tokens only (the selection itself), and
carrying the text (the rows a writer receives: tamis copies the chosen texts with Arrow's
``take``; pandas, with an object column, copies references). Peak Python and numpy memory of
plan + sample (tracemalloc) is measured at ``--docs / 4`` and ``--docs`` documents to show
it flat in corpus size.

Usage: ``.venv/bin/python bench/mix.py [--docs 1000000] [--batch-rows 10000]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from devdocs import DEVDOCS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.embedding.embed_model import DEFAULT_MODEL, model_path  # noqa: E402
from operators.hashing import byte_hashes, string_hashes  # noqa: E402
from operators.base import DROP_REASON  # noqa: E402
from operators.mixing.config import TOKENS, MixConfig  # noqa: E402
from operators.mixing.plan import MixPlan  # noqa: E402
from operators.mixing.sample import MixSample  # noqa: E402
from operators.mixing.tokens import MixTokens, tokenizer_counts  # noqa: E402

SOURCES = np.array(["web", "code", "books"])
PHASES = {"main": ({"web": 0.6, "code": 0.25, "books": 0.15}, 0.5),
          "anneal": ({"web": 0.2, "code": 0.3, "books": 0.5}, 0.1)}


def cpu() -> float:
    return time.process_time()


def base_texts() -> list[str]:
    with gzip.open(DEVDOCS, "rt", encoding="utf-8") as f:
        return [t for t in (json.loads(line).get("text") for line in f) if isinstance(t, str) and t.strip()]


def batches(texts: list[str], docs: int, rows: int, with_text: bool = True) -> Iterator[pa.Table]:
    """``docs`` documents in batches: id ``d<i>``, text = base text ``i mod len(texts)``."""
    for start in range(0, docs, rows):
        idx = np.arange(start, min(start + rows, docs))
        ids = pa.array([f"d{i}" for i in idx])
        h = string_hashes(ids) % np.uint64(100)
        source = SOURCES[np.where(h < 60, 0, np.where(h < 85, 1, 2))]
        columns = {"id": ids, "source": pa.array(source)}
        if with_text:
            columns["text"] = pa.array([texts[i % len(texts)] for i in idx])
        yield pa.table(columns)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = cpu()
    out = fn()
    return cpu() - start, out


def peak(fn: Callable[[], object]) -> int:
    """Peak bytes of ``fn`` as tracemalloc sees them (Python objects and numpy arrays; a
    batch's Arrow output is freed before the next and is not counted)."""
    tracemalloc.start()
    fn()
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top


def mix_config(total: float, seed: int) -> MixConfig:
    """The 2-phase mix, as tamis is configured for it."""
    return MixConfig(policy="weights", weights=PHASES["main"][0], seed=seed, shuffle=False,
                     phases=[{"name": name, "budget_tokens": fraction * total, "weights": weights}
                             for name, (weights, fraction) in PHASES.items()])


def tamis_mix(meta: list[pa.Table], texts: list[str] | None, batch_rows: int, total: float,
              seed: int) -> tuple[float, dict[str, int]]:
    """(CPU seconds, rows out per phase) of both phases' plan (a fit over the batches' id,
    source and tokens) and sample (over batches with their text, built outside the timing,
    unless ``texts`` is None)."""
    config = mix_config(total, seed)
    seconds, plan = timed(lambda: MixPlan(config).fit(iter(meta)))
    sampler = MixSample(config, plan)
    out: Counter[str] = Counter()
    for number, batch in enumerate(meta):
        start = number * batch_rows
        if texts is not None:
            batch = batch.append_column("text", pa.array([texts[i % len(texts)]
                                                          for i in range(start, start + batch.num_rows)]))
        spent, sampled = timed(lambda: sampler(batch))
        seconds += spent
        out.update(sampled.filter(pc.is_null(sampled[DROP_REASON]))["mix_phase"].to_pylist())
    return seconds, dict(out)


def pandas_mix(frame: pd.DataFrame, total: float, seed: int) -> dict[str, int]:
    from operators.mixing.policy import plan_targets, policy_shares

    out = {}
    for phase, (weights, fraction) in PHASES.items():
        available = frame.groupby("source")[TOKENS].sum().astype(float).to_dict()
        targets = plan_targets(available, policy_shares(available, "weights", weights), fraction * total, 4.0)
        parts = []
        for source, group in frame.groupby("source"):
            frac = targets[source].target / available[source]
            parts.append(group.sample(frac=frac, replace=frac > 1, random_state=seed))
        out[phase] = int(sum(len(p) for p in parts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--tokenizer-docs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    if not DEVDOCS.exists():
        sys.exit(f"{DEVDOCS} is absent")
    texts = base_texts()
    byte_hashes(pa.array(["warm-up"]))  # load the compiled kernel outside the timings
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}; "
          f"{args.docs:,} documents from {len(texts):,} devdocs texts, batches of {args.batch_rows:,}")

    # counting with the estimate: every document, batch by batch
    counter = MixTokens(MixConfig(budget_tokens=1))
    tables, t_count, t_pandas_count = [], 0.0, 0.0
    for number, batch in enumerate(batches(texts, args.docs, args.batch_rows)):
        seconds, counted = timed(lambda: counter(batch))
        t_count += seconds
        start = number * args.batch_rows
        series = pd.Series([texts[i % len(texts)] for i in range(start, start + batch.num_rows)])
        seconds, _ = timed(lambda: series.str.len() // 4)
        t_pandas_count += seconds
        tables.append(counted.drop_columns(["text"]))  # the text is rebuilt for sampling: 1M texts do not fit twice
    print(f"count (estimate): tamis {args.docs / t_count:,.0f} docs/s per core ({t_count:.1f} s, UTF-8 bytes); "
          f"pandas str.len() // 4 {args.docs / t_pandas_count:,.0f} ({t_pandas_count:.1f} s, characters)")

    # counting with a tokenizer
    path = str(Path(model_path(DEFAULT_MODEL)) / "tokenizer.json")
    sub = [texts[i % len(texts)] for i in range(args.tokenizer_docs)]
    t_tok, mine = timed(lambda: MixTokens(MixConfig(budget_tokens=1, tokens={"tokenizer": path}))(
        pa.table({"text": sub}))[TOKENS].to_numpy())
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    t_plain_tok, plain = timed(lambda: np.array([len(e.ids) for e in tokenizer.encode_batch(sub,
                                                                                             add_special_tokens=False)]))
    assert np.array_equal(mine, plain)
    assert np.array_equal(tokenizer_counts(sub[:100], path), plain[:100])
    print(f"count (tokenizer, {args.tokenizer_docs:,} docs, CPU s of all threads): tamis "
          f"{args.tokenizer_docs / t_tok:,.0f} docs/s ({t_tok:.1f} s); encode_batch at once "
          f"{args.tokenizer_docs / t_plain_tok:,.0f} ({t_plain_tok:.1f} s)")

    total = float(sum(pc.sum(t[TOKENS]).as_py() for t in tables))
    frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    for label, with_text in (("id, source, tokens", False), ("with the text", True)):
        if with_text:
            # object dtype: references to the same strings; pandas 3's default Arrow strings
            # would copy a million texts (again in every groupby and sample), past 24 GiB
            frame["text"] = pd.Series([texts[i % len(texts)] for i in range(args.docs)], dtype=object)
        t_mix, rows = tamis_mix(tables, texts if with_text else None, args.batch_rows, total, args.seed)
        t_pd, pd_rows = timed(lambda: pandas_mix(frame, total, args.seed))
        print(f"plan + sample, 2 phases, {label}: tamis {args.docs / t_mix:,.0f} docs/s per core ({t_mix:.1f} s, "
              f"rows {rows}); pandas {args.docs / t_pd:,.0f} ({t_pd:.1f} s, rows {pd_rows}); "
              f"ratio {t_pd / t_mix:.2f}x")

    quarter = tables[: max(1, len(tables) // 4)]
    small = peak(lambda: tamis_mix(quarter, texts, args.batch_rows, total / 4, args.seed))
    large = peak(lambda: tamis_mix(tables, texts, args.batch_rows, total, args.seed))
    print(f"peak Python + numpy memory of plan + sample (tracemalloc): {small / 2**20:.0f} MiB at "
          f"{len(quarter) * args.batch_rows:,} docs, {large / 2**20:.0f} MiB at {args.docs:,}")


if __name__ == "__main__":
    main()
