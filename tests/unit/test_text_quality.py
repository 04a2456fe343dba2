"""Unit tests of text_quality_score (operators/quality/text_quality*.py)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from operators import registry
from operators.quality.text_quality import (TextQualityCalibrate, TextQualityConfig,
                                            TextQualityScore, TextQualityScoreCalibrated,
                                            fitted_weights, rule_column)
from operators.quality.text_quality_rules import RULES
from tests.support.quality_text import texts

GOOD = "The quick brown fox jumps over the lazy dog near the river bank."
OTHER = "A small boat drifted slowly down the wide river in the morning."


def run(*docs: str | None, **config: object) -> dict[str, list]:
    """Columns of ``text_quality_score.score`` over ``docs``."""
    op = TextQualityScore(TextQualityConfig(**config))
    return op(pa.table({"text": pa.array(docs, pa.string())})).to_pydict()


def test_registered_as_composite_of_score_alone_without_calibration() -> None:
    composite = registry.get("text_quality_score")
    parts = composite.parts(TextQualityConfig())
    assert [(p.suffix, p.operator) for p in parts] == [("score", TextQualityScore)]
    calibrated = composite.parts(TextQualityConfig(calibrate={"reference_source": "wiki"}))
    assert [(p.suffix, p.operator) for p in calibrated] == [
        ("calibrate", TextQualityCalibrate), ("score", TextQualityScoreCalibrated)]
    assert TextQualityScore.columns_written(TextQualityConfig(rule_columns=False)) == (
        "quality_text_score",)
    assert TextQualityScore.columns_written(TextQualityConfig())[2:] == tuple(
        rule_column(r) for r in RULES)


def test_a_clean_document_passes_every_rule() -> None:
    out = run(f"{GOOD}\n{OTHER}")
    assert out["quality_text_score"] == [1.0]
    assert out["quality_text_words"] == [27]  # 13 + 12 words and two periods
    assert all(out[rule_column(r)] == [1.0] for r in RULES)


FAILING_LINES = {
    "terminal_punct": ("The river was calm and the water was clear all day long", {}),
    "min_words": ("Brown foxes.", {}),
    "max_word_length": ("The internationalization of the web is a big topic for us.",
                        {"rules": {"max_word_length": 12}}),
    "no_javascript": ("Please enable JavaScript in your browser to view this page.", {}),
    "no_policy": ("By using this site you accept our privacy policy and our terms.", {}),
    "no_lorem_ipsum": ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", {}),
    "no_curly_bracket": ("The function returns {value} to the caller when it is done.", {}),
    "no_bullet": ("- The quick brown fox jumps over the lazy dog in the field.", {}),
    "no_ellipsis": ("The quick brown fox jumps over the lazy dog and then ...", {}),
    "alpha_words": ("The values 12 34 56 78 and 90 were measured today.", {}),
    "word_length": ("I am so so ok, go on a bit.", {}),
    "max_uppercase": ("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG NEAR THE RIVER.", {}),
    "max_digits": ("Call 555 1234 567 8901 2345 now please.", {}),
    "unique_line": (GOOD, {}),
}


def test_every_rule_has_a_failing_line() -> None:
    assert set(FAILING_LINES) == set(RULES)


@pytest.mark.parametrize("rule", RULES)
def test_failing_a_rule_lowers_its_share_and_the_score(rule: str) -> None:
    line, config = FAILING_LINES[rule]
    clean, failing = f"{GOOD}\n{OTHER}", f"{GOOD}\n{line}"
    out = run(clean, failing, **config)
    assert out[rule_column(rule)][0] == 1.0
    words = out["quality_text_words"][1]
    first = 14  # the words of GOOD
    assert out[rule_column(rule)][1] == pytest.approx(first / words)
    assert out["quality_text_score"][1] < out["quality_text_score"][0] == 1.0


def test_score_is_the_weighted_mean_of_the_rule_shares() -> None:
    doc = f"{GOOD}\n{FAILING_LINES['max_uppercase'][0]}\n- {OTHER}\n{GOOD}"
    out = run(doc)
    shares = np.array([out[rule_column(r)][0] for r in RULES])
    assert out["quality_text_score"][0] == pytest.approx(shares.mean())
    weights = {r: float(i + 1) for i, r in enumerate(RULES)}
    w = np.array(list(weights.values()))
    assert run(doc, weights=weights)["quality_text_score"][0] == pytest.approx(shares @ w / w.sum())
    # one rule alone: the score is the share of words in lines passing it
    only = {r: 0.0 for r in RULES} | {"unique_line": 1.0}
    assert run(doc, weights=only)["quality_text_score"][0] == pytest.approx(
        out[rule_column("unique_line")][0])
    # scaling every weight changes nothing
    assert run(doc, weights={r: 7.0 for r in RULES})["quality_text_score"] == \
        pytest.approx(out["quality_text_score"])


def test_raising_a_weight_moves_the_score_towards_that_rule_share() -> None:
    doc = f"{GOOD}\n{FAILING_LINES['terminal_punct'][0]}"
    base = run(doc)["quality_text_score"][0]
    heavy_failed = run(doc, weights={"terminal_punct": 10.0})["quality_text_score"][0]
    heavy_passed = run(doc, weights={"no_bullet": 10.0})["quality_text_score"][0]
    assert heavy_failed < base < heavy_passed == pytest.approx(1 - (1 - base) * 14 / 23)


@pytest.mark.parametrize("text", ["", None, "   ", "\n\n\t\n", "\u3000\u2028"])
def test_documents_without_words_score_zero(text: str | None) -> None:
    out = run(text)
    assert out["quality_text_score"] == [0.0] and out["quality_text_words"] == [0]
    assert all(out[rule_column(r)] == [0.0] for r in RULES)


def test_empty_batch_and_rule_columns_off() -> None:
    assert run() == {"text": [], "quality_text_score": [],  "quality_text_words": [],
                     **{rule_column(r): [] for r in RULES}}
    assert set(run(GOOD, rule_columns=False)) == {"text", "quality_text_score"}


def test_rerunning_replaces_the_columns() -> None:
    op = TextQualityScore(TextQualityConfig())
    once = op(pa.table({"text": [GOOD, "x"]}))
    assert op(once).equals(once)


def test_bad_configs_fail_validation() -> None:
    with pytest.raises(ValidationError, match="at least one weight"):
        TextQualityConfig(weights={r: 0.0 for r in RULES})
    with pytest.raises(ValidationError, match="extra"):
        TextQualityConfig(weights={"no_such_rule": 1.0})
    with pytest.raises(ValidationError, match="greater than or equal"):
        TextQualityConfig(weights={"min_words": -1.0})
    with pytest.raises(ValidationError, match="exactly one"):
        TextQualityConfig(calibrate={})
    with pytest.raises(ValidationError, match="exactly one"):
        TextQualityConfig(calibrate={"reference_source": "a", "label_column": "b"})


def test_scripts_without_spaces_and_other_marks() -> None:
    out = run("\u8fd9\u662f\u4e00\u4e2a\u5f88\u597d\u7684\u53e5\u5b50\u3002",
              "\u042d\u0442\u043e \u0445\u043e\u0440\u043e\u0448\u0435\u0435 "
              "\u043f\u0440\u0435\u0434\u043b\u043e\u0436\u0435\u043d\u0438\u0435 "
              "\u0434\u043b\u044f \u0442\u0435\u0441\u0442\u0430.",
              'He said "the dog ran home."\nIt was in the news.[1]')
    assert out[rule_column("terminal_punct")] == [1.0, 1.0, 1.0]


# --- calibration -------------------------------------------------------------------------------

NAV = ["Home", "About us", "Contact", "Products and services", "Latest news", "Our team", "Careers",
       "Site map", "Help centre", "Shop online", "Store locator", "Gift cards"]
PROSE = ["The committee met on Tuesday to review the annual budget and its many details.",
         "Several members raised concerns about the rising cost of public transport.",
         "After a long discussion the proposal was approved by a narrow margin.",
         "Local residents welcomed the decision and praised the open process.",
         "The new library will open next spring with longer opening hours."]
CODE = ["if (ready) { start(); }", "for (i = 0; i < n; i++) { total += x[i]; }",
        "CONFIGURATION AND SETUP", "return { ok: true };"]


def planted(seed: int = 0, count: int = 30) -> pa.Table:
    """Reference documents: prose with code lines and capital headings (the default weights
    count those against them); contrast documents: navigation lines without punctuation."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        good = rng.sample(PROSE, 2) + rng.sample(CODE, 3)
        rng.shuffle(good)
        rows.append({"id": f"good-{i}", "text": "\n".join(good), "source": "wiki", "label": True})
        bad = [f"{a} {b} and {c} links" for a, b, c in (rng.sample(NAV, 3) for _ in range(4))]
        rows.append({"id": f"bad-{i}", "text": "\n".join(bad), "source": "crawl", "label": False})
    return pa.Table.from_pylist(rows)


def calibrate(table: pa.Table, batch_rows: int = 7, **calibration: object) -> pa.Table:
    config = TextQualityConfig(calibrate=calibration or {"label_column": "label"})
    batches: Iterator[pa.Table] = iter(table.to_batches(max_chunksize=batch_rows))
    return TextQualityCalibrate(config).fit(pa.Table.from_batches([b]) for b in batches)


def auc(scores: list[float], labels: list[bool]) -> float:
    good = [s for s, l in zip(scores, labels) if l]
    bad = [s for s, l in zip(scores, labels) if not l]
    return float(np.mean([(g > b) + 0.5 * (g == b) for g in good for b in bad]))


def test_calibrated_weights_separate_the_planted_sets_better_than_the_defaults() -> None:
    table = planted()
    artifact = calibrate(table)
    weights = dict(zip(artifact["rule"].to_pylist(), artifact["weight"].to_pylist()))
    assert weights["terminal_punct"] > 0.5  # the contrast never ends a line with a mark
    assert weights["no_curly_bracket"] == 0.0 and weights["max_uppercase"] == 0.0
    assert artifact["fitted"].to_pylist() == [True] * len(RULES)
    assert artifact["reference_documents"][0].as_py() == artifact["contrast_documents"][0].as_py() == 30

    default = TextQualityScore(TextQualityConfig())(table)["quality_text_score"].to_pylist()
    fitted = TextQualityScoreCalibrated(TextQualityConfig(), artifact)(table)
    scores = fitted["quality_text_score"].to_pylist()
    labels = table["label"].to_pylist()
    assert auc(default, labels) < 0.5 < auc(scores, labels) == 1.0
    assert min(s for s, l in zip(scores, labels) if l) > max(s for s, l in zip(scores, labels) if not l)


def test_calibration_is_order_free_and_the_two_markers_agree() -> None:
    table = planted()
    first = calibrate(table)
    shuffled = table.take(pa.array(random.Random(3).sample(range(table.num_rows), table.num_rows)))
    assert calibrate(shuffled, batch_rows=11).equals(first)
    assert calibrate(table, reference_source="wiki").equals(first)
    # bottom-k samples by id hash do not depend on order either
    small = calibrate(table, label_column="label", max_documents=5)
    assert calibrate(shuffled, batch_rows=3, label_column="label", max_documents=5).equals(small)
    assert small["reference_documents"][0].as_py() == 5


def test_calibration_labels_nulls_numbers_and_zero_weights() -> None:
    table = planted()
    numeric = table.set_column(3, "label", pa.array([1.0 if l else -1.0 for l in
                                                     table["label"].to_pylist()]))
    assert calibrate(numeric)["weight"].equals(calibrate(table)["weight"])
    with_nulls = table.set_column(3, "label", pa.array(table["label"].to_pylist()[:20] + [None] * 40))
    assert calibrate(with_nulls)["reference_documents"][0].as_py() == 10
    config = TextQualityConfig(calibrate={"label_column": "label"}, weights={"terminal_punct": 0.0})
    kept_out = TextQualityCalibrate(config).fit(iter([table]))
    assert kept_out["weight"][RULES.index("terminal_punct")].as_py() == 0.0


def test_calibration_keeps_the_configured_weights_when_no_rule_separates() -> None:
    same = pa.table({"id": ["a", "b"], "text": [GOOD, GOOD], "label": [True, False]})
    artifact = calibrate(same)
    assert artifact["fitted"].to_pylist() == [False] * len(RULES)
    assert artifact["weight"].to_pylist() == [1.0] * len(RULES)


def test_calibration_errors_name_the_problem() -> None:
    table = planted()
    with pytest.raises(ValueError, match="needs words in both sets"):
        calibrate(table, reference_source="no-such-source")
    with pytest.raises(TypeError, match="must be boolean or numeric"):
        calibrate(table.set_column(3, "label", table["source"]))
    with pytest.raises(ValueError, match="needs the artifact"):
        TextQualityScoreCalibrated(TextQualityConfig(), None)
    assert TextQualityCalibrate.columns_read(TextQualityConfig(calibrate={"label_column": "x"})) == (
        "id", "text", "x")


def test_fitted_weights_formula() -> None:
    p, q = np.array([1.0, 1.0, 0.5, 0.0, 0.2]), np.array([0.0, 1.0, 1.0, 0.0, 0.1])
    assert fitted_weights(p, q).tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0, 1 / 3])


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(docs=st.lists(texts, min_size=1, max_size=4))
def test_any_text_scores_in_unit_interval_deterministically_whatever_the_batches(docs: list[str]) -> None:
    whole = run(*docs)
    assert run(*docs) == whole
    for name, values in whole.items():
        if name != "text" and name != "quality_text_words":
            assert all(0.0 <= v <= 1.0 for v in values), name
    for i, doc in enumerate(docs):
        alone = run(doc)
        assert alone["quality_text_score"] == [whole["quality_text_score"][i]]


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_repeating_a_document_never_raises_its_score(text: str) -> None:
    once, twice = run(text, text + "\n" + text)["quality_text_score"]
    assert twice <= once + 1e-12


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_appending_a_clean_new_line_never_lowers_the_score(text: str) -> None:
    line = "Zebras graze quietly beside the winding river every single morning."
    before, after = run(text, text + "\n" + line)["quality_text_score"]
    assert after >= before - 1e-12


@settings(max_examples=60, deadline=None)
@given(text=texts, rule=st.sampled_from(RULES), extra=st.floats(0.1, 50))
def test_a_heavier_rule_pulls_the_score_towards_its_share(text: str, rule: str, extra: float) -> None:
    out = run(text)
    base, share = out["quality_text_score"][0], out[rule_column(rule)][0]
    moved = run(text, weights={rule: 1.0 + extra})["quality_text_score"][0]
    assert min(base, share) - 1e-12 <= moved <= max(base, share) + 1e-12


def test_a_one_megabyte_line_and_mixed_scripts() -> None:
    big = "word " * 200_000
    out = run(big, "a" * 1_000_000, "\u65e5\u672c\u8a9e \u0416\u0443\u043a \U0001f600 \u0301 x.")
    assert out["quality_text_words"][:2] == [200_000, 1]
    assert all(0.0 <= s <= 1.0 for s in out["quality_text_score"])
