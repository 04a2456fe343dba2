"""Test-only operators (slow, failing, fit + artifact consumer), loaded through ``plugins:``.

``slow_copy`` passes rows through unchanged after sleeping, so fault tests have a window in
which to kill a worker or the driver mid-stage. It also records the pid of the process that
ran it in a marker directory (config), so a test can find and kill exactly that worker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pyarrow as pa
from pydantic import Field

from operators.base import FitOperator, GroupOperator, MapOperator, OperatorConfig, ResourceHint
from operators.registry import register


class SlowCopyConfig(OperatorConfig):
    seconds_per_batch: float = Field(0.5, description="Sleep per batch.")
    pid_dir: str | None = Field(None, description="Directory where each running worker drops <pid>.")


@register("slow_copy")
class SlowCopy(MapOperator[SlowCopyConfig]):
    """Passes batches through unchanged after a sleep (for fault tests only).

    Reads: nothing. Writes: nothing. Deterministic output (the input).
    """

    version = 1
    Config = SlowCopyConfig

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.config.pid_dir:
            open(os.path.join(self.config.pid_dir, str(os.getpid())), "w").close()
        time.sleep(self.config.seconds_per_batch)
        return batch


@register("slow_group")
class SlowGroup(GroupOperator[SlowCopyConfig]):
    """Groups documents by ``source`` and returns them unchanged after a sleep per call (for
    fault tests only: a window in which to lose a node mid-shuffle). Records its pid as
    ``slow_copy`` does.

    Reads: source. Writes: nothing. Deterministic output (the input).
    """

    version = 1
    Config = SlowCopyConfig
    reads = ("source",)

    def group_key(self) -> tuple[str, ...]:
        return ("source",)

    def __call__(self, table: pa.Table) -> pa.Table:
        return SlowCopy.__call__(self, table)  # type: ignore[arg-type]


class ExplodeConfig(OperatorConfig):
    message: str = Field("planted failure", description="The error message to raise.")


@register("explode")
class Explode(MapOperator[ExplodeConfig]):
    """Raises on every batch (for failure-reporting tests only).

    Reads: nothing. Writes: nothing.
    """

    version = 1
    Config = ExplodeConfig

    def __call__(self, batch: pa.Table) -> pa.Table:
        raise RuntimeError(self.config.message)


class WordTotalsConfig(OperatorConfig):
    pass


@register("test_word_totals")
class WordTotals(FitOperator[WordTotalsConfig]):
    """Fits the number of documents and words per source (a test fit operator).

    Reads: source, quality_word_count. Artifact: source, docs, words.
    """

    version = 1
    Config = WordTotalsConfig
    reads = ("source", "quality_word_count")

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        tables = [b.select(["source", "quality_word_count"]) for b in batches]
        table = pa.concat_tables(tables)
        grouped = table.group_by("source").aggregate([("quality_word_count", "sum"), ("source", "count")])
        return grouped.rename_columns({"quality_word_count_sum": "words", "source_count": "docs"}).select(
            ["source", "docs", "words"]).sort_by("source")


class SlowFitConfig(OperatorConfig):
    seconds: float = Field(0.0, description="Sleep before fitting.")
    pid_dir: str | None = Field(None, description="Directory where the fitting worker drops <pid>.")


@register("slow_word_totals")
class SlowWordTotals(FitOperator[SlowFitConfig]):
    """``test_word_totals`` after a sleep, recording the pid of the process that fits (for
    fault tests only: a window in which to lose the node that runs the fit).

    Reads: source, quality_word_count. Artifact: source, docs, words.
    """

    version = 1
    Config = SlowFitConfig
    reads = ("source", "quality_word_count")

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        if self.config.pid_dir:
            open(os.path.join(self.config.pid_dir, str(os.getpid())), "w").close()
        time.sleep(self.config.seconds)
        return WordTotals.fit(self, batches)  # type: ignore[arg-type]


@register("test_word_share")
class WordShare(MapOperator[WordTotalsConfig]):
    """Share of its source's words each document holds, from the upstream fit's artifact.

    Reads: source, quality_word_count. Writes: test_word_share.
    """

    version = 1
    Config = WordTotalsConfig
    reads = ("source", "quality_word_count")
    writes = ("test_word_share",)
    uses_artifact = True

    def __call__(self, batch: pa.Table) -> pa.Table:
        totals = dict(zip(self.artifact["source"].to_pylist(), self.artifact["words"].to_pylist()))
        shares = [w / totals[s] for s, w in zip(batch["source"].to_pylist(), batch["quality_word_count"].to_pylist())]
        return batch.append_column("test_word_share", pa.array(shares, pa.float64()))


@register("test_actor_tag")
class ActorTag(MapOperator[WordTotalsConfig]):
    """Tags rows with the pid of the actor holding it (exercises the actor-pool path).

    Reads: nothing. Writes: test_actor_pid, test_actor_batches (batches seen by the actor).
    """

    version = 1
    Config = WordTotalsConfig
    writes = ("test_actor_pid", "test_actor_batches")
    resources = ResourceHint(num_cpus=0.5, stateful=True)

    def __init__(self, config: WordTotalsConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self.batches = 0  # state that lives as long as the actor

    def __call__(self, batch: pa.Table) -> pa.Table:
        self.batches += 1
        n = batch.num_rows
        return batch.append_column("test_actor_pid", pa.array([os.getpid()] * n)).append_column(
            "test_actor_batches", pa.array([self.batches] * n))

    def metrics(self) -> dict[str, float]:
        return {"batches": self.batches}


class CountInitsConfig(OperatorConfig):
    init_dir: str = Field(description="Directory where each construction drops a file.")


@register("count_inits")
class CountInits(MapOperator[CountInitsConfig]):
    """Passes batches through; each construction (an actor starting, as a model would load)
    drops a file in ``init_dir``, so a test can count how often the stage's actors started.

    Reads: nothing. Writes: nothing.
    """

    version = 1
    Config = CountInitsConfig
    resources = ResourceHint(num_cpus=1.0, stateful=True)

    def __init__(self, config: CountInitsConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        open(os.path.join(config.init_dir, f"init-{os.getpid()}-{id(self)}"), "w").close()

    def __call__(self, batch: pa.Table) -> pa.Table:
        return batch
