"""Which parts of ``mix`` a changed parameter reruns (``Part.fields``; see
tests/unit/test_part_fingerprints.py for the other composites)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fingerprint_chains import chain, expected, leaf_paths, part_name, plan, rerun

MIX = {"budget_tokens": 1000.0}
MIX_WEIGHTS = {"budget_tokens": 1000.0, "policy": "weights", "weights": {"a": 1.0}}
MIX_PHASES = {"phases": [{"name": "main", "budget_tokens": 900.0}, {"name": "anneal", "budget_tokens": 100.0}]}
MIX_RERUNS: list[tuple[dict[str, Any], dict[str, Any], str | None]] = [
    (MIX, {"tokens.estimate": "words_per_token"}, "tokens"),
    (MIX, {"tokens.value": 3.5}, "tokens"),
    (MIX, {"group_by": "lang"}, "plan"),
    (MIX, {"budget_tokens": 2000.0}, "plan"),  # the counts are reused
    (MIX, {"policy": "unimax"}, "plan"),
    (MIX_WEIGHTS, {"weights": {"a": 2.0, "b": 1.0}}, "plan"),
    (MIX, {"temperature": 2.0}, "plan"),
    (MIX, {"max_epochs": 2.0}, "plan"),
    (MIX, {"allow_short": True}, "plan"),
    (MIX, {"within_group": "top_score", "score_column": "s"}, "plan"),
    (MIX, {"score_column": "s"}, "plan"),
    (MIX, {"seed": 7}, "plan"),
    (MIX, {"score_sample": 500}, "plan"),
    (MIX_PHASES, {"phases": [{"name": "main", "budget_tokens": 800.0}, {"name": "anneal", "budget_tokens": 200.0}]},
     "plan"),
]


@pytest.mark.parametrize("base,changes,first", MIX_RERUNS, ids=[",".join(c) for _, c, _ in MIX_RERUNS])
def test_mix_reruns_from_the_first_part_that_reads_the_parameter(base: dict[str, Any], changes: dict[str, Any],
                                                                 first: str | None) -> None:
    changed, names = rerun("mix", base, changes)
    assert names == ["tokens", "plan", "sample", "shuffle"]
    assert changed == expected(names, first)


def test_the_mix_table_covers_every_parameter() -> None:
    from operators.mixing.config import MixConfig

    covered = {path for _, changes, _ in MIX_RERUNS for path in changes}
    # files (tested in test_mix_operators: a changed tokenizer or weights file changes the
    # fingerprinted sha256 or weights); shuffle changes the part list (below)
    untested = {"tokens.tokenizer", "tokens.tokenizer_sha256", "weights_file", "shuffle"}
    assert covered | untested == leaf_paths(MixConfig)


def test_mix_without_shuffle_drops_only_the_shuffle() -> None:
    with_shuffle, without = plan("mix", MIX), plan("mix", {**MIX, "shuffle": False})
    assert [part_name(s) for s in without] == ["tokens", "plan", "sample"]
    assert chain(without) == {k: v for k, v in chain(with_shuffle).items() if k != "shuffle"}
