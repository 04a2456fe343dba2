"""``mix.sample``: each document as many times as the plan gives its group, or rejected.

In a staged mix each phase plans and selects on its own (the selection hash takes the
phase's name), and every copy carries ``mix_phase``; a document rejected is one taken by no
phase.

A document of a group planned at ``e + f`` epochs (``e`` whole, ``f < 1``) is emitted ``e``
times, plus once more when the plan selects it (its selection hash below the group's cut,
or its score above the group's score cut; :mod:`operators.mixing.plan`). Each copy carries
``mix_epoch`` (0, 1, ...), so a repeat is traceable to its document; a document with no
copy is one rejected row with ``mix:not_sampled``. The choice depends only on the document's
id, group, score and the plan, never on files, batches or workers.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import DROP_REASON, TAKE_COLUMN, MapOperator, OperatorConfig, set_column, with_drop_reason
from operators.filtering.expression import parse_expression
from operators.hashing import byte_hashes, splitmix64
from operators.mixing.config import EPOCH, NOT_SAMPLED, ORDER, PHASE, TOKENS, MixConfig
from operators.mixing.plan import group_label, group_values, score_columns, selection_hashes
from operators.registry import register


@register("mix.sample")
class MixSample(MapOperator[MixConfig]):
    """Copies of each document by its group's plan, with ``mix_epoch``; the others rejected.

    Reads: id, group_by, mix_tokens (and score_column for top_score), the plan artifact.
    Writes: mix_phase (string, with phases), mix_epoch (int32), mix_order (uint64, the
    shuffle's key), drop_reason (``mix:not_sampled``), and ``_tamis_take``, each row's index
    in the batch (``repeats_rows``: the engine stores a kept copy as its row number, not its
    text). Emits more rows than it reads where a group is repeated or a document is in
    several phases.
    """

    version = 2  # 2: kept copies stored as row numbers in the input file (repeats_rows)
    Config = MixConfig
    uses_artifact = True
    repeats_rows = True

    def __init__(self, config: MixConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        if artifact is None:
            raise ValueError("mix.sample needs the plan of mix.plan")
        self.phases = dict(config.phase_configs())  # phase name (None without phases) -> its config, in order
        self.plan = {(row["phase"] or None, row["group"]): row for row in artifact.to_pylist()}
        self._tokens: Counter[str] = Counter()
        self._rows: Counter[str] = Counter()

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, MixConfig)
        return tuple(dict.fromkeys(("id", *parse_expression(config.group_by).columns, TOKENS,
                                    *score_columns(config))))

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, MixConfig)
        return (*((PHASE,) if config.phases else ()), EPOCH, ORDER, DROP_REASON)

    def metrics(self) -> dict[str, float]:
        out = {f"group.{g}.tokens_out": float(v) for g, v in self._tokens.items()}
        out.update({f"group.{g}.rows_out": float(v) for g, v in self._rows.items()})
        return out

    def copies(self, batch: pa.Table, phase: str | None, u: np.ndarray, codes: np.ndarray,
               names: list[str]) -> np.ndarray:
        """How many times each row of ``batch`` goes into ``phase`` (``u``: its selection hashes
        there; ``codes``: each row's index into the group ``names``)."""
        c = self.phases[phase]
        scores = None
        if c.within_group == "top_score":
            scores = pc.fill_null(batch[c.score_column].cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        copies = np.zeros(batch.num_rows, np.int64)
        for code, name in enumerate(names):
            plan = self.plan.get((phase, name))
            if plan is None:  # a group the plan never saw: the fit read every document, so a bug upstream
                raise ValueError(f"mix.sample: group {name!r} is not in the plan")
            rows = np.flatnonzero(codes == code)
            if scores is None:
                extra = u[rows] < np.uint64(plan["hash_cut"])
            elif plan["score_cut"] is None:
                extra = np.zeros(len(rows), bool)
            elif plan["score_cut"] == float("-inf"):  # every scored row, then unscored ones by u
                s = scores[rows]
                extra = ~np.isnan(s) | (u[rows] <= np.uint64(plan["score_tie_cut"]))
            else:
                s = scores[rows]
                extra = (s > plan["score_cut"]) | ((s == plan["score_cut"])
                                                  & (u[rows] <= np.uint64(plan["score_tie_cut"])))
            copies[rows] = plan["whole_epochs"] + extra
        return copies

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        encoded = pc.dictionary_encode(group_values(batch, self.config.group_by))
        codes, names = encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary.to_pylist()
        index, epoch, order, phase_of, total = [], [], [], [], np.zeros(n, np.int64)
        id_hashes = byte_hashes(batch["id"])
        for p, phase in enumerate(self.phases):
            u = selection_hashes(id_hashes, self.config.seed, phase)
            copies = self.copies(batch, phase, u, codes, names)
            total += copies
            rows = np.repeat(np.arange(n), copies)
            epochs = np.arange(len(rows)) - np.repeat(np.cumsum(copies) - copies, copies)
            index.append(rows)
            epoch.append(epochs)
            # the order mix.shuffle sorts by: a hash of (id, seed, phase, epoch), so copies land apart
            order.append(splitmix64(u[rows] ^ splitmix64(epochs.astype(np.uint64))))
            phase_of.append(np.full(len(rows), p))
        rejected = np.flatnonzero(total == 0)  # in no phase: one rejected row
        taken = np.concatenate([np.ones(sum(len(i) for i in index), bool), np.zeros(len(rejected), bool)])
        rows = np.concatenate([*index, rejected])
        epochs = np.concatenate([*epoch, np.zeros(len(rejected), np.int64)])
        phases = np.concatenate([*phase_of, np.zeros(len(rejected), np.int64)])
        keys = np.concatenate([*order, np.zeros(len(rejected), np.uint64)])
        # in input order (then phase, epoch): the output does not depend on how rows are batched
        by_input = np.lexsort((epochs, phases, rows))
        rows, epochs, phases, keys, taken = (a[by_input] for a in (rows, epochs, phases, keys, taken))
        out = batch.take(pa.array(rows, pa.int64()))
        out = set_column(out, TAKE_COLUMN, pa.array(rows, pa.int64()))
        out = set_column(out, EPOCH, pa.array(epochs.astype(np.int32), mask=~taken))
        out = set_column(out, ORDER, pa.array(keys, pa.uint64()))
        if self.config.phases:
            labels = pa.DictionaryArray.from_arrays(pa.array(phases.astype(np.int32), mask=~taken),
                                                    pa.array(list(self.phases)))
            out = set_column(out, PHASE, labels.cast(pa.string()))
        tokens = pc.fill_null(batch[TOKENS], 0).to_numpy(zero_copy_only=False)
        self._count(codes[rows], tokens[rows], taken, phases, names)
        reasons = pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(rows), np.int32), mask=taken),
                                                 pa.array([NOT_SAMPLED])).cast(pa.string())
        return with_drop_reason(out, reasons)

    def _count(self, codes: np.ndarray, tokens: np.ndarray, taken: np.ndarray, phases: np.ndarray,
               names: list[str]) -> None:
        """Realized tokens and rows per (phase,) group, for the stage's metrics."""
        for p, phase in enumerate(self.phases):
            mine = taken & (phases == p)
            rows = np.bincount(codes[mine], minlength=len(names))
            summed = np.bincount(codes[mine], weights=tokens[mine], minlength=len(names))
            for code in np.flatnonzero(rows):
                label = group_label(phase, names[code])
                self._tokens[label] += int(summed[code])
                self._rows[label] += int(rows[code])
