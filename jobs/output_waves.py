"""The output written wave by wave while the last stage still runs.

After the last stage's waves commit one by one, the whole output used to be written after
the last wave: on a GPU machine the GPU waited for it (5-8 s of a 115 s, 3,000,000-document
embedding run; a corpus of a thousand waves would wait a thousand times as long). Here the
ledger hands each committed wave of the last stage to :class:`WaveOutput`, which writes that
wave's files as output shards in a background thread (one Ray Data job per wave, beside the
stage's own), numbering the shards on from the wave before. ``write_output`` then waits for
them and writes the manifest. The rules of the output stay: old shards go before the first
new one, the manifest is written last, and if the waves handed over do not add up to the
stage's files (a stage reused whole, say) the output is written the usual way, after it.

Shards are planned per wave, so none spans two waves: a wave's last shard may be smaller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from jobs import checkpoint as cp
from jobs.checkpoint import WaveResult
from jobs.ledger import RunContext, StageCommit, StageEntry
from jobs.output import clear_output, output_place, up_to_date


class WaveOutput:
    """Writes the last stage's committed waves as output shards, in the background.

    Use as a context manager around the stages: it listens to the ledger only when the
    output is not already up to date, and on exit waits for writes in flight.
    """

    def __init__(self, ctx: RunContext, run_id: str, last: StageEntry) -> None:
        self.ctx, self.last = ctx, last.index
        self.uri, self.out_store, self.fingerprint = output_place(ctx, run_id, last.fingerprint)
        self.pool: ThreadPoolExecutor | None = None
        self.pending: list[tuple[list[str], Future[list[dict[str, Any]]] | None]] = []
        self.shards = 0
        self.started: float | None = None

    def __enter__(self) -> "WaveOutput":
        if not up_to_date(self.out_store, self.fingerprint):
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tamis-output")
            self.ctx.ledger.wave_listener = self
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.ledger.wave_listener = None
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def __call__(self, entries: Sequence[StageEntry], results: list[WaveResult]) -> None:
        """The ledger's listener: ``results`` are one committed wave's, entry by entry."""
        if entries[-1].index != self.last or self.pool is None:
            return
        spec = self.ctx.spec
        if self.started is None:
            clear_output(self.out_store)
            self.started = time.time()
        files = results[-1].files
        shards = cp.plan_even([(f.key, f.bytes) for f in files], spec.output.target_shard_mb << 20)
        first, self.shards = self.shards, self.shards + len(shards)
        future = self.pool.submit(self.ctx.executor.run_write, shards, self.ctx.store, self.uri, spec.s3_options(),
                                  spec.output.format, spec.execution.batch_rows, spec.output.split_columns or None,
                                  spec.output.weight_column, first) if shards else None
        self.pending.append(([f.key for f in files], future))
        self.ctx.progress.event(f"output: {len(shards)} shard(s) of wave {len(self.pending)} being written")

    def finish(self, last: StageCommit) -> tuple[list[dict[str, Any]], float] | None:
        """The stats rows of every shard written, and the seconds since the first began; None
        when the waves handed over are not all of ``last``'s files (write it all again then).

        Raises:
            Exception: what a shard's write raised.
        """
        stats: list[dict[str, Any]] = []
        keys: list[str] = []
        for wave_keys, future in self.pending:
            keys += wave_keys
            stats += future.result() if future is not None else []
        if self.started is None or sorted(keys) != sorted(f.key for f in last.files):
            return None
        return stats, time.time() - self.started
