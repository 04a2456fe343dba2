"""``mix.plan``: per-group tokens -> per-group targets, and how to select each group's documents.

One pass over (id, group, ``mix_tokens``, score) in bounded memory per group:

1. Sum each group's documents and tokens; :mod:`operators.mixing.policy` turns them into
   targets (policy, budget, ``max_epochs``, redistribution).
2. A group's target ``t`` over its ``n`` tokens is ``floor(t / n)`` whole epochs (every
   document that many times) plus a fraction ``f = t / n - floor(t / n)`` of one more, chosen:
   - ``random``: documents whose selection hash ``u = splitmix64(hash(id) ^ seed)`` (:func:`operators.hashing.byte_hashes`) is below a
     cut. The cut comes from a histogram of tokens over 4,096 equal ranges of ``u``: the
     ranges below it hold ``f x n`` tokens, and inside the range it falls in, the cut is
     interpolated. The realized tokens therefore differ from the target by at most the
     tokens of that one range, about ``n / 4096`` (for a group of up to a few thousand
     documents, at most one document's tokens);
   - ``top_score``: documents in descending ``score_column`` (ties by ``u``) down to a score
     cut, estimated from a bottom-k sample by ``u`` (Cohen and Kaplan 2007, as ``quantiles``)
     of ``score_sample`` documents: exact for groups no larger, otherwise within the
     sample's error (about ``sqrt(f(1 - f) / k)`` of the group's tokens).

No document is collected and nothing is sorted globally; the artifact is one row per group.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from operators.base import FitOperator, OperatorConfig
from operators.filtering.expression import parse_expression
from operators.hashing import byte_hashes, splitmix64
from operators.mixing.config import TOKENS, MixConfig
from operators.mixing.policy import plan_targets, policy_shares
from operators.registry import register

log = logging.getLogger(__name__)

HISTOGRAM_BITS = 12
_SHIFT = np.uint64(64 - HISTOGRAM_BITS)
_RANGE = float(2 ** (64 - HISTOGRAM_BITS))
MAX_CUT = np.iinfo(np.uint64).max

PLAN_SCHEMA = pa.schema([
    ("phase", pa.string()), ("group", pa.string()), ("documents", pa.int64()), ("available_tokens", pa.float64()),
    ("share", pa.float64()), ("target_tokens", pa.float64()), ("capped", pa.bool_()),
    ("whole_epochs", pa.int64()), ("hash_cut", pa.uint64()), ("score_cut", pa.float64()),
    ("score_tie_cut", pa.uint64())])
"""One row per phase (``""`` without phases) and group: a document gets ``whole_epochs``
copies, plus one when it is selected: ``u < hash_cut`` (random) or ``score > score_cut`` or
``score == score_cut and u <= score_tie_cut`` (top_score; a null ``score_cut`` selects none;
``score_cut = -inf`` selects every scored document and the unscored ones with
``u <= score_tie_cut``, where the scored ones alone fall short of the target)."""


_expression = functools.lru_cache(maxsize=16)(parse_expression)


def group_values(batch: pa.Table, group_by: str) -> pa.Array:
    """Each row's group as text: ``group_by`` (a column, or an expression over columns such
    as ``floor(quality_text_score_rank * 10)``) on ``batch``; a null value is the group ``""``."""
    values = pc.fill_null(_expression(group_by).values(batch).cast(pa.string()), "")
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def selection_hashes(ids: pa.Array | pa.ChunkedArray | np.ndarray, seed: int, phase: str | None = None) -> np.ndarray:
    """``u`` per document: uniform over 64 bits, a function of (id, seed, phase) only, so
    that each phase of a staged mix selects independently. ``ids`` may be given as their
    :func:`byte_hashes` already, to hash them once for several phases."""
    salt = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], np.uint64))[0]
    if phase is not None:
        salt ^= byte_hashes(pa.array([phase]))[0]
    return splitmix64((ids if isinstance(ids, np.ndarray) else byte_hashes(ids)) ^ salt)


def group_label(phase: str | None, group: str) -> str:
    """How a group is named in metrics: ``<phase>:<group>`` in a staged mix."""
    return group if phase is None else f"{phase}:{group}"


def score_columns(config: MixConfig) -> tuple[str, ...]:
    """The score columns any phase's ``top_score`` reads."""
    return tuple(dict.fromkeys(c.score_column for _, c in config.phase_configs()
                               if c.within_group == "top_score" and c.score_column))


class _Group:
    """What the plan keeps of one group while streaming: counts, the histogram, a sample."""

    def __init__(self) -> None:
        self.documents = 0
        self.tokens = 0.0
        self.histogram = np.zeros(2 ** HISTOGRAM_BITS)
        self.sample = (np.zeros(0, np.uint64), np.zeros(0), np.zeros(0))  # u, score, tokens

    def add(self, u: np.ndarray, tokens: np.ndarray, scores: np.ndarray | None, k: int) -> None:
        self.documents += len(u)
        self.tokens += float(tokens.sum())
        self.histogram += np.bincount((u >> _SHIFT).astype(np.int64), weights=tokens,
                                      minlength=len(self.histogram))
        if scores is not None:
            h, s, t = (np.concatenate([a, b]) for a, b in zip(self.sample, (u, scores, tokens)))
            if len(h) > 2 * k:  # amortized: back to the k smallest hashes
                order = np.argsort(h, kind="stable")[:k]
                h, s, t = h[order], s[order], t[order]
            self.sample = (h, s, t)

    def hash_cut(self, fraction_tokens: float) -> int:
        """The ``u`` below which the group's documents hold ``fraction_tokens`` tokens."""
        if fraction_tokens <= 0:
            return 0
        cumulative = np.cumsum(self.histogram)
        k = int(np.searchsorted(cumulative, fraction_tokens, side="left"))
        if k >= len(cumulative):
            return int(MAX_CUT)
        before = cumulative[k - 1] if k else 0.0
        inside = (fraction_tokens - before) / self.histogram[k] if self.histogram[k] > 0 else 1.0
        return min(int((k + min(max(inside, 0.0), 1.0)) * _RANGE), int(MAX_CUT))

    def score_cut(self, fraction: float, k: int) -> tuple[float | None, int]:
        """(score, tie hash) of the document at which ``fraction`` of the tokens, best first, is reached.

        Documents without a score come after every scored one, in ``u`` order: where the
        scored ones hold less than the fraction, the cut is ``(-inf, u cut)``: every scored
        document, then unscored ones up to the ``u`` cut (:data:`PLAN_SCHEMA`)."""
        h, s, t = self._bottom_k(k)
        wanted = fraction * t.sum()  # the sample is uniform over the group: its token fraction estimates the group's
        if fraction <= 0 or not len(h):
            return None, 0
        valid = ~np.isnan(s)
        if t[valid].sum() < wanted and not valid.all():  # the scored documents do not fill it
            unscored_h, unscored_t = h[~valid], t[~valid]  # already in u order
            cumulative = np.cumsum(unscored_t)
            at = min(int(np.searchsorted(cumulative, wanted - t[valid].sum(), side="left")), len(unscored_h) - 1)
            return float("-inf"), int(unscored_h[at])
        h, s, t = h[valid], s[valid], t[valid]
        best_first = np.lexsort((h, -s))
        cumulative = np.cumsum(t[best_first])
        at = min(int(np.searchsorted(cumulative, wanted, side="left")), len(h) - 1)
        row = best_first[at]
        return float(s[row]), int(h[row])

    def unscored_share(self, k: int) -> float:
        """The share of the group's tokens, in its score sample, on documents without a score."""
        _, s, t = self._bottom_k(k)
        return float(t[np.isnan(s)].sum() / t.sum()) if t.sum() > 0 else 0.0

    def _bottom_k(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The score sample's ``k`` smallest hashes (u, score, tokens), in u order."""
        h, s, t = self.sample
        order = np.argsort(h, kind="stable")[:k]
        return h[order], s[order], t[order]


@register("mix.plan")
class MixPlan(FitOperator[MixConfig]):
    """The mix's plan: targets per group under the policy, and each group's selection cut.

    Algorithm: the module docstring (UniMax, Chung et al. 2023, for the epoch caps; bottom-k
    sampling, Cohen and Kaplan 2007, for the top_score cut).

    Reads: id, group_by, mix_tokens (and score_column for top_score). Writes no document
    column: the plan artifact (:data:`PLAN_SCHEMA`).
    """

    version = 2  # 2: top_score fills a shortfall of scored documents with unscored ones
    Config = MixConfig

    def __init__(self, config: MixConfig, artifact: pa.Table | None = None) -> None:
        super().__init__(config, artifact)
        self._metrics: dict[str, float] = {}

    @classmethod
    def columns_read(cls, config: OperatorConfig) -> tuple[str, ...]:
        assert isinstance(config, MixConfig)
        return tuple(dict.fromkeys(("id", *parse_expression(config.group_by).columns, TOKENS,
                                    *score_columns(config))))

    def metrics(self) -> dict[str, float]:
        return dict(self._metrics)

    def fit(self, batches: Iterator[pa.Table]) -> pa.Table:
        c = self.config
        phases = c.phase_configs()
        groups: dict[str | None, dict[str, _Group]] = {name: {} for name, _ in phases}
        for batch in batches:
            tokens = pc.fill_null(batch[TOKENS], 0).to_numpy(zero_copy_only=False).astype(np.float64)
            encoded = pc.dictionary_encode(group_values(batch, c.group_by))
            codes = encoded.indices.to_numpy(zero_copy_only=False)
            members = [(name, np.flatnonzero(codes == code)) for code, name in
                       enumerate(encoded.dictionary.to_pylist())]
            id_hashes = byte_hashes(batch["id"])
            for phase, pc_ in phases:
                u = selection_hashes(id_hashes, c.seed, phase)
                scores = None
                if pc_.within_group == "top_score":
                    scores = pc.fill_null(batch[pc_.score_column].cast(pa.float64()), np.nan).to_numpy(
                        zero_copy_only=False)
                for name, rows in members:
                    groups[phase].setdefault(name, _Group()).add(
                        u[rows], tokens[rows], None if scores is None else scores[rows], c.score_sample)
        rows_out: list[dict] = []
        for phase, pc_ in phases:
            rows_out += self._plan_phase(phase, pc_, groups[phase])
        self._metrics.update(budget_tokens=float(sum(p.budget_tokens or 0 for _, p in phases)),
                             planned_tokens=float(sum(r["target_tokens"] for r in rows_out)))
        return pa.Table.from_pylist(rows_out, schema=PLAN_SCHEMA)

    def _plan_phase(self, phase: str | None, c: MixConfig, groups: dict[str, "_Group"]) -> list[dict]:
        """One phase's plan rows: targets under its policy, then each group's cut."""
        assert c.budget_tokens is not None
        available = {g: groups[g].tokens for g in sorted(groups)}
        shares = policy_shares(available, c.policy, c.weights, c.temperature)
        targets = plan_targets(available, shares, c.budget_tokens, c.max_epochs, c.allow_short)
        rows = []
        for name, target in targets.items():
            group = groups[name]
            whole = int(np.floor(target.epochs + 1e-12))
            rest = max(target.target - whole * target.available, 0.0)
            hash_cut, score_cut, tie = 0, None, 0
            if c.within_group == "top_score":
                score_cut, tie = group.score_cut(rest / target.available if target.available else 0.0,
                                                 c.score_sample)
                unscored = group.unscored_share(c.score_sample)
                self._metrics[f"group.{group_label(phase, name)}.unscored_token_share"] = unscored
                if score_cut == float("-inf"):
                    log.warning("mix%s: group %s: documents with a %s hold %.1f %% of its tokens, fewer than "
                                "its target takes; documents without one fill the rest, in hash order",
                                f" phase {phase}" if phase else "", name, c.score_column, 100 * (1 - unscored))
            else:
                hash_cut = group.hash_cut(rest)
            rows.append({"phase": phase or "", "group": name, "documents": group.documents,
                         "available_tokens": target.available, "share": target.share,
                         "target_tokens": target.target, "capped": target.capped, "whole_epochs": whole,
                         "hash_cut": hash_cut, "score_cut": score_cut, "score_tie_cut": tie})
            for key, value in (("documents", group.documents), ("available_tokens", target.available),
                               ("share", target.share), ("target_tokens", target.target),
                               ("epochs", target.epochs)):
                self._metrics[f"group.{group_label(phase, name)}.{key}"] = float(value)
        planned = sum(t.target for t in targets.values())
        where = f"mix phase {phase}" if phase else "mix"
        if planned < c.budget_tokens * (1 - 1e-9):
            log.warning("%s: the budget of %.0f tokens is short by %.0f (allow_short)", where, c.budget_tokens,
                        c.budget_tokens - planned)
        unweighted = [g for g, t in targets.items() if t.share == 0]
        if unweighted:
            log.warning("%s: group(s) with no weight, left out: %s", where, ", ".join(unweighted))
        return rows
