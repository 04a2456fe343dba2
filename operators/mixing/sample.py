"""``mix.sample``: each document as many times as the plan gives its group, or rejected.

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

from operators.base import DROP_REASON, MapOperator, OperatorConfig, set_column, with_drop_reason
from operators.filtering.expression import parse_expression
from operators.hashing import splitmix64
from operators.mixing.config import EPOCH, NOT_SAMPLED, ORDER, TOKENS, MixConfig
from operators.mixing.plan import group_values, selection_hashes
from operators.registry import register


@register("mix.sample")
class MixSample(MapOperator[MixConfig]):
    """Copies of each document by its group's plan, with ``mix_epoch``; the others rejected.

    Reads: id, group_by, mix_tokens (and score_column for top_score), the plan artifact.
    Writes: mix_epoch (int32), mix_order (uint64, the shuffle's key), drop_reason
    (``mix:not_sampled``). Emits more rows than it reads where a group is repeated.
    """

    version = 1
    Config = MixConfig
    uses_artifact = True

    def __init__(self, config: MixConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        if artifact is None:
            raise ValueError("mix.sample needs the plan of mix.plan")
        self.plan = {row["group"]: row for row in artifact.to_pylist()}
        self._tokens: Counter[str] = Counter()
        self._rows: Counter[str] = Counter()

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, MixConfig)
        score = (config.score_column,) if config.within_group == "top_score" and config.score_column else ()
        return ("id", *parse_expression(config.group_by).columns, TOKENS, *score)

    @classmethod
    def columns_written(cls, config: OperatorConfig) -> tuple[str, ...]:
        return (EPOCH, ORDER, DROP_REASON)

    def metrics(self) -> dict[str, float]:
        out = {f"group.{g}.tokens_out": float(v) for g, v in self._tokens.items()}
        out.update({f"group.{g}.rows_out": float(v) for g, v in self._rows.items()})
        return out

    def copies(self, batch: pa.Table, u: np.ndarray | None = None) -> np.ndarray:
        """How many times each row of ``batch`` goes into the mix (``u``: its selection hashes)."""
        c = self.config
        u = selection_hashes(batch["id"], c.seed) if u is None else u
        values = group_values(batch, c.group_by)
        encoded = pc.dictionary_encode(values)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        scores = None
        if c.within_group == "top_score":
            scores = pc.fill_null(batch[c.score_column].cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        copies = np.zeros(batch.num_rows, np.int64)
        for code, name in enumerate(encoded.dictionary.to_pylist()):
            plan = self.plan.get(name)
            if plan is None:  # a group the plan never saw: the fit read every document, so a bug upstream
                raise ValueError(f"mix.sample: group {name!r} is not in the plan")
            rows = np.flatnonzero(codes == code)
            if scores is None:
                extra = u[rows] < np.uint64(plan["hash_cut"])
            elif plan["score_cut"] is None:
                extra = np.zeros(len(rows), bool)
            else:
                s = scores[rows]
                extra = (s > plan["score_cut"]) | ((s == plan["score_cut"]) & (u[rows] <= np.uint64(plan["score_tie_cut"])))
            copies[rows] = plan["whole_epochs"] + extra
        return copies

    def __call__(self, batch: pa.Table) -> pa.Table:
        u = selection_hashes(batch["id"], self.config.seed)
        copies = self.copies(batch, u)
        emitted = np.maximum(copies, 1)  # a document not taken is one rejected row
        index = np.repeat(np.arange(batch.num_rows), emitted)
        starts = np.repeat(np.cumsum(emitted) - emitted, emitted)
        epoch = np.arange(len(index)) - starts
        out = batch.take(pa.array(index))
        taken = np.repeat(copies > 0, emitted)
        out = set_column(out, EPOCH, pa.array(epoch.astype(np.int32), mask=~taken))
        # the order mix.shuffle sorts by: a hash of (id, seed, epoch), so copies land apart
        order = splitmix64(u[index] ^ splitmix64(epoch.astype(np.uint64)))
        out = set_column(out, ORDER, pa.array(order, pa.uint64()))
        reasons = pa.array(np.where(taken, None, NOT_SAMPLED), pa.string())
        groups = group_values(out, self.config.group_by).to_numpy(zero_copy_only=False)
        tokens = pc.fill_null(out[TOKENS], 0).to_numpy(zero_copy_only=False)
        for name in np.unique(groups[taken]):
            mine = taken & (groups == name)
            self._tokens[str(name)] += int(tokens[mine].sum())
            self._rows[str(name)] += int(mine.sum())
        return with_drop_reason(out, reasons)
