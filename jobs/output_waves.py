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

Shards stay near ``target_shard_mb`` however small a wave's files are: each wave's files are
packed together with those held back from the waves before, every shard but the last is
written at once, and the last one's files are held back for the next wave (or written after
the stage): what is left to write after the last wave is one shard, not a whole stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from jobs import checkpoint as cp
from jobs.checkpoint import FileRef, WaveResult
from jobs.ledger import RunContext, StageCommit, StageEntry
from jobs.output import clear_output, current_manifest, output_place


class WaveOutput:
    """Writes the last stage's committed waves as output shards, in the background.

    Use as a context manager around the stages: it listens to the ledger only when the
    output is not already up to date, and on exit waits for writes in flight.
    """

    def __init__(self, ctx: RunContext, run_id: str, last: StageEntry) -> None:
        self.ctx, self.last = ctx, last.index
        self.uri, self.out_store, self.fingerprint = output_place(ctx, run_id, last.fingerprint)
        self.pool: ThreadPoolExecutor | None = None
        self.pending: list[Future[list[dict[str, Any]]]] = []
        self.handed: list[str] = []  # the keys of every file handed over
        self.held: list[FileRef] = []  # files of the last, maybe short, shard planned: for the next wave
        self.shards = 0
        self.started = False

    def __enter__(self) -> "WaveOutput":
        if current_manifest(self.out_store, self.fingerprint) is None:
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
        if not self.started:
            clear_output(self.out_store)
            self.started = True
        files = self.held + results[-1].files
        self.handed += [f.key for f in results[-1].files]
        shards = cp.plan_even([(f.key, f.bytes) for f in files], self.ctx.spec.output.target_shard_bytes)
        last = set(shards[-1]) if shards else set()
        self.held = [f for f in files if f.key in last]
        if len(shards) > 1:
            self.pending.append(self.pool.submit(self._write, shards[:-1]))
            self.ctx.progress.event(f"output: {len(shards) - 1} shard(s) being written while the stage runs")

    def _write(self, shards: list[list[str]]) -> list[dict[str, Any]]:
        first, self.shards = self.shards, self.shards + len(shards)
        spec = self.ctx.spec
        return self.ctx.executor.run_write(shards, self.ctx.store, self.uri, spec.s3_options(), spec.output.format,
                                           spec.execution.batch_rows, spec.output.split_columns or None,
                                           spec.output.weight_column, first)

    def finish(self, last: StageCommit) -> list[dict[str, Any]] | None:
        """The stats rows of every shard, once the held-back files are written too; None when
        the waves handed over are not all of ``last``'s files (write it all again then).

        Raises:
            Exception: what a shard's write raised.
        """
        if not self.started or sorted(self.handed) != sorted(f.key for f in last.files):
            return None
        if self.held:  # shards are numbered in order: after every wave's
            assert self.pool is not None
            self.pending.append(self.pool.submit(self._write, [[f.key for f in self.held]]))
        return [row for future in self.pending for row in future.result()]
