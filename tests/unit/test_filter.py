"""Unit tests of the expression language and the ``filter`` operator."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from operators.base import DROP_REASON
from operators.filtering.expression import ExpressionError, MissingColumnError, parse_expression
from operators.filtering.filter import Filter, FilterConfig, Rule

TABLE = pa.table(
    {
        "n": [1, 5, None, 10],
        "x": [0.5, 2.0, 3.0, None],
        "lang": ["en", "de", None, "fr"],
        "ok": [True, False, True, None],
    }
)


def keep(expr: str, table: pa.Table = TABLE) -> list[bool]:
    """The keep mask of ``expr`` on ``table``."""
    result = parse_expression(expr).evaluate(table)
    assert isinstance(result, pa.BooleanArray)
    assert result.null_count == 0
    return result.to_pylist()


def reasons(config: FilterConfig, table: pa.Table = TABLE) -> list[str | None]:
    """The drop reasons ``Filter(config)`` gives ``table``, asserting no row is removed."""
    out = Filter(config)(table)
    assert out.num_rows == table.num_rows
    return out[DROP_REASON].to_pylist()


# --- expression language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("n < 5", [True, False, False, False]),
        ("n <= 5", [True, True, False, False]),
        ("n > 5", [False, False, False, True]),
        ("n >= 5", [False, True, False, True]),
        ("n == 5", [False, True, False, False]),
        ("n != 5", [True, False, False, True]),
        ("lang == 'en'", [True, False, False, False]),
        ("ok", [True, False, True, False]),
        ("ok == True", [True, False, True, False]),
    ],
)
def test_comparisons(expr: str, expected: list[bool]) -> None:
    assert keep(expr) == expected


def test_chained_comparison() -> None:
    assert keep("1 < n <= 10") == [False, True, False, True]
    assert keep("0 <= x < n") == [True, True, False, False]


def test_boolean_operators_use_kleene_logic() -> None:
    assert keep("n > 1 and lang == 'de'") == [False, True, False, False]
    assert keep("n > 1 or lang == 'en'") == [True, True, False, True]
    # null or True is True; null and False is False.
    assert keep("n > 100 or lang == 'en' or ok") == [True, False, True, False]
    assert keep("not ok") == [False, True, False, False]
    assert keep("not (n > 1)") == [True, False, False, False]


def test_arithmetic_and_unary_minus() -> None:
    assert keep("n * 2 - 1 > 8") == [False, True, False, True]
    assert keep("-n < -4") == [False, True, False, True]
    assert keep("n + x >= 7") == [False, True, False, False]


def test_division_is_true_division_and_zero_divisor_is_null() -> None:
    table = pa.table({"a": [1, 3, 4], "b": [2, 0, 4]})
    assert keep("a / b == 0.5", table) == [True, False, False]
    assert keep("a / b >= 0", table) == [True, False, True]
    assert keep("is_null(a / b)", table) == [False, True, False]


def test_in_and_not_in() -> None:
    assert keep("lang in ['en', 'fr']") == [True, False, False, True]
    assert keep("lang not in ('en', 'fr')") == [False, True, False, False]
    assert keep("n in [1, 10, -3]") == [True, False, False, True]
    assert keep("x in [0.5, 3]") == [True, False, True, False]
    assert keep("lang in []") == [False, False, False, False]
    assert keep("lang not in []") == [True, True, False, True]


def test_calls() -> None:
    assert keep("is_null(lang)") == [False, False, True, False]
    assert keep("is_valid(n) and is_valid(x)") == [True, True, False, False]
    table = pa.table({"s": ["", "h\u00e9", None], "l": [[1], [], [1, 2]]})
    assert keep("len(s) == 2", table) == [False, True, False]
    assert keep("len(l) > 0", table) == [True, False, True]


def test_constant_expression_broadcasts() -> None:
    assert keep("True") == [True] * 4
    assert keep("1 > 2") == [False] * 4


def test_null_result_is_not_kept() -> None:
    assert keep("n > 0") == [True, True, False, True]
    assert keep("not (n > 0)") == [False, False, False, False]
    assert keep("lang not in ['xx']") == [True, True, False, True]


def test_columns_in_order_of_first_appearance() -> None:
    compiled = parse_expression("b > 1 and (a < 2 or b == 3) and is_null(c)")
    assert compiled.columns == ("b", "a", "c")


def test_compiled_expression_pickles() -> None:
    compiled = pickle.loads(pickle.dumps(parse_expression("n in [1, 5] and x > 0")))
    assert compiled.evaluate(TABLE).to_pylist() == [True, True, False, False]
    op = pickle.loads(pickle.dumps(Filter(FilterConfig(expr="n > 1"))))
    assert op(TABLE)[DROP_REASON].to_pylist() == ["filter:n", None, "filter:n", None]


def test_chunked_columns() -> None:
    table = pa.table({"n": pa.chunked_array([[1, 2], [], [3]])})
    assert keep("n >= 2", table) == [False, True, True]


@pytest.mark.parametrize(
    ("expr", "construct"),
    [
        ("text.upper() == 'A'", "unsupported call"),
        ("n.real > 1", "attribute access"),
        ("lang[0] == 'e'", "subscript"),
        ("(lambda: True)()", "call"),
        ("lambda: 1", "lambda"),
        ("open('x')", "unsupported call"),
        ("__import__('os').system('true')", "unsupported call"),
        ("len(x, y) > 1", "exactly one positional argument"),
        ("n ** 2 > 1", "Pow"),
        ("n // 2 > 1", "FloorDiv"),
        ("~ok", "Invert"),
        ("n is None", "Is"),
        ("n == None", "None"),
        ("x in y", "list of literals"),
        ("x in [y]", "literals"),
        ("x in [1, 'a']", "mix literal types"),
        ("1 < x in [1]", "chained"),
        ("[n for n in m]", "comprehension"),
        ("a if b else c", "conditional"),
        ("b'raw' == x", "bytes"),
        ("x >", "syntax error"),
        ("", "syntax error"),
    ],
)
def test_disallowed_constructs_are_rejected(expr: str, construct: str) -> None:
    with pytest.raises(ExpressionError, match="allowed") as info:
        parse_expression(expr)
    assert construct in str(info.value)
    assert isinstance(info.value, ValueError)


def test_error_names_the_position() -> None:
    with pytest.raises(ExpressionError, match=r"'y\.z' at column 9"):
        parse_expression("n > 1 or y.z")


def test_missing_column_names_it_and_the_present_ones() -> None:
    with pytest.raises(MissingColumnError, match=r"\['nope'\].*'n', 'x', 'lang', 'ok'"):
        parse_expression("nope > 1").evaluate(TABLE)


def test_type_mismatch_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="lang > 1"):
        parse_expression("lang > 1").evaluate(TABLE)
    with pytest.raises(ExpressionError, match="must be boolean"):
        parse_expression("n + 1").evaluate(TABLE)
    with pytest.raises(ExpressionError, match="must be boolean"):
        parse_expression("n and ok").evaluate(TABLE)


# --- filter operator ------------------------------------------------------------------------


def test_registered() -> None:
    assert Filter.name == "filter"
    assert Filter.columns_written(FilterConfig(expr="n > 1")) == ("drop_reason",)


def test_expr_with_default_reason() -> None:
    table = pa.table({"quality_word_count": [10, 100]})
    config = FilterConfig(expr="quality_word_count >= 50")
    assert reasons(config, table) == ["quality:word_count", None]


def test_expr_with_given_reason() -> None:
    config = FilterConfig(expr="n > 1", reason="quality:too_small")
    assert reasons(config) == ["quality:too_small", None, "quality:too_small", None]


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("quality_word_count", "quality:word_count"),
        ("dedup_exact_keep", "dedup:exact_keep"),
        ("cluster_id", "cluster:id"),
        ("mix_weight", "mix:weight"),
        ("lang_score", "lang:score"),
        ("score", "filter:score"),
        ("other_thing", "filter:other_thing"),
        ("quality", "filter:quality"),
    ],
)
def test_default_reason_from_first_column(column: str, reason: str) -> None:
    table = pa.table({column: [0]})
    assert reasons(FilterConfig(rules=[Rule(keep=f"{column} > 0")]), table) == [reason]


def test_rules_in_order_first_failure_wins() -> None:
    config = FilterConfig(
        rules=[
            {"keep": "n >= 5", "reason": "quality:small"},
            {"keep": "lang == 'en'", "reason": "lang:not_en"},
        ]
    )
    # Rows 0 and 2 fail the first rule (2 by a null); rows 1 and 3 only the second.
    assert reasons(config) == ["quality:small", "lang:not_en", "quality:small", "lang:not_en"]
    swapped = FilterConfig(rules=list(reversed(config.rules)))
    assert reasons(swapped) == ["quality:small", "lang:not_en", "lang:not_en", "lang:not_en"]


def test_existing_drop_reason_is_preserved() -> None:
    table = TABLE.append_column(DROP_REASON, pa.array(["dedup:exact", None, None, None]))
    assert reasons(FilterConfig(expr="n >= 5"), table) == ["dedup:exact", None, "filter:n", None]


def test_all_rows_dropped() -> None:
    config = FilterConfig(expr="n > 100", reason="quality:tiny")
    assert reasons(config) == ["quality:tiny"] * 4


def test_empty_batch() -> None:
    out = Filter(FilterConfig(expr="n > 1"))(TABLE.slice(0, 0))
    assert out.num_rows == 0
    assert out.schema.field(DROP_REASON).type == pa.string()


def test_columns_read_is_ordered_union() -> None:
    config = FilterConfig(rules=[{"keep": "b > 1 and a < 2"}, {"keep": "c or a > 0"}])
    assert Filter.columns_read(config) == ("b", "a", "c")


def test_config_needs_exactly_one_of_expr_and_rules() -> None:
    with pytest.raises(ValidationError, match="exactly one of 'expr' or 'rules'.*neither"):
        FilterConfig()
    with pytest.raises(ValidationError, match="exactly one of 'expr' or 'rules'.*both"):
        FilterConfig(expr="n > 1", rules=[{"keep": "n > 2"}])
    with pytest.raises(ValidationError, match="at least one rule"):
        FilterConfig(rules=[])
    with pytest.raises(ValidationError, match="'reason' goes with 'expr'"):
        FilterConfig(rules=[{"keep": "n > 2"}], reason="quality:x")


@pytest.mark.parametrize("reason", ["Quality:x", "nocolon", "quality:", ":x", "a:b c", "a:b:c"])
def test_config_rejects_bad_reason(reason: str) -> None:
    with pytest.raises(ValidationError, match="must look like"):
        FilterConfig(expr="n > 1", reason=reason)
    with pytest.raises(ValidationError, match=r"rules\.0\.reason"):
        FilterConfig(rules=[{"keep": "n > 1", "reason": reason}])


def test_config_reports_expression_errors_at_field_path() -> None:
    with pytest.raises(ValidationError, match=r"rules\.1\.keep\n.*attribute access"):
        FilterConfig(rules=[{"keep": "n > 1"}, {"keep": "n.real > 1"}])
    with pytest.raises(ValidationError, match=r"expr\n.*syntax error"):
        FilterConfig(expr="n >")


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        FilterConfig(expr="n > 1", threshold=3)


@given(
    values=st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=30),
    thresholds=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=5),
)
def test_threshold_filter_is_monotonic(values: list[float | None], thresholds: list[float]) -> None:
    table = pa.table({"quality_x": pa.array(values, pa.float64())})
    kept_sets = []
    for threshold in sorted(thresholds):
        out = reasons(FilterConfig(expr=f"quality_x >= {threshold!r}"), table)
        kept_sets.append({index for index, reason in enumerate(out) if reason is None})
    for looser, stricter in zip(kept_sets, kept_sets[1:]):
        assert stricter <= looser
