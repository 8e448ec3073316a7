"""The derived-feature expression evaluator: what it accepts, what it refuses, what it computes.

Refusals are checked by what an attacker would try (builtins, attributes, dunders, calls), and
values against numpy written out by hand for the same formula.
"""

from __future__ import annotations

import numpy as np
import pytest

from jobs_pipeline.calc.expressions import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_NODES,
    ExpressionError,
    parse_expression,
)

RNG = np.random.default_rng(7)
VOLTAGE = RNG.uniform(300.0, 800.0, 1000)
CURRENT = RNG.uniform(-1.0, 12.0, 1000)
AC = RNG.uniform(-50.0, 9000.0, 1000)


@pytest.mark.parametrize(
    ("text", "naming"),
    [
        ("__import__('os').system('true')", "only the functions abs, min, max, where"),
        ("__import__('os')", "names may not start with '_'"),
        ("().__class__", "attribute access"),
        ("dc_power.__class__.__mro__", "attribute access"),
        ("a.b", "attribute access"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("eval('1') * a", "unknown function 'eval'"),
        ("getattr(a, 'real')", "unknown function 'getattr'"),
        ("__builtins__", "names may not start with '_'"),
        ("_private + a", "names may not start with '_'"),
        ("a[0]", "subscripts"),
        ("a[1:]", "subscripts"),
        ("(lambda: a)()", "only the functions abs, min, max, where may be called"),
        ("lambda: a", "lambdas"),
        ("[x for x in a]", "comprehensions"),
        ("sum(x for x in a)", "unknown function 'sum'"),
        ("{x: 1 for x in a}", "comprehensions"),
        ("'text' + a", "strings"),
        ("b'bytes' * a", "strings"),
        ("f'{a}'", "strings"),
        ("a if b else 0", "use where(condition, a, b)"),
        ("a and b", "'and'/'or'"),
        ("not a", "operator 'not'"),
        ("a // b", "operator '//'"),
        ("a % b", "operator '%'"),
        ("a @ b", "operator '@'"),
        ("a | b", "operator '|'"),
        ("~a", "operator '~'"),
        ("a is b", "comparison 'is'"),
        ("a in b", "comparison 'in'"),
        ("(x := a)", "assignments"),
        ("[a, b]", "lists"),
        ("(a, b)", "tuples"),
        ("True * a", "constants like True"),
        ("None", "constants like None"),
        ("2j * a", "complex numbers"),
        ("abs", "'abs' is a function"),
        ("abs(a, b)", "abs() takes one argument"),
        ("min(a)", "min() takes two or more arguments"),
        ("where(a, b)", "where() takes three arguments"),
        ("max(*a)", "starred arguments"),
        ("abs(x=a)", "takes no keyword arguments"),
        ("a = 1", "not an expression"),
        ("import os", "not an expression"),
        ("a; b", "not an expression"),
        ("1 + 2", "names no feature"),
        ("", "empty"),
        ("   ", "empty"),
        ("a\x00", "NUL"),
    ],
)
def test_refuses_everything_but_arithmetic_over_names(text: str, naming: str) -> None:
    with pytest.raises(ExpressionError, match=None) as refused:
        parse_expression(text)
    assert naming in str(refused.value)
    assert "\n" not in str(refused.value)


def test_refuses_long_wide_and_deep_expressions() -> None:
    with pytest.raises(ExpressionError, match=f"at most {MAX_EXPRESSION_CHARS}"):
        parse_expression("a + " * 300 + "a")
    with pytest.raises(ExpressionError, match=f"more than {MAX_NODES} terms"):
        parse_expression("max(" + ", ".join(["a"] * (MAX_NODES + 5)) + ")")
    with pytest.raises(ExpressionError, match=f"deeper than {MAX_DEPTH} levels"):
        parse_expression("-" * (MAX_DEPTH + 5) + "a")
    with pytest.raises(ExpressionError, match=f"deeper than {MAX_DEPTH} levels"):
        parse_expression("abs(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))


def test_huge_powers_end_as_no_data_not_as_a_hang() -> None:
    # Python would compute 9**9**9 as an integer of 370 million digits; the evaluator works in
    # floats, where it overflows at once.
    expression = parse_expression("9 ** 9 ** 9 * a + 10 ** 400")
    assert np.isnan(expression.evaluate({"a": np.array([1.0, 2.0])})).all()
    with pytest.raises(ExpressionError, match="too large"):
        parse_expression("1" + "0" * 400 + " * a")


def test_names_are_listed_once_in_order_of_first_use() -> None:
    expression = parse_expression("where(ac_power > 0, ac_power / (dc_voltage * dc_current), 0)")
    assert expression.names == ("ac_power", "dc_voltage", "dc_current")


def test_dc_power_and_efficiency_equal_numpy_written_by_hand() -> None:
    dc_power = parse_expression("dc_voltage * dc_current / 1000").evaluate(
        {"dc_voltage": VOLTAGE, "dc_current": CURRENT}
    )
    np.testing.assert_array_equal(dc_power, VOLTAGE * CURRENT / 1000)

    efficiency = parse_expression(
        "where(dc_power > 0.5, min(ac_power / (dc_power * 1000), 1.2), 0)"
    ).evaluate({"dc_power": dc_power, "ac_power": AC})
    expected = np.where(dc_power > 0.5, np.minimum(AC / (dc_power * 1000), 1.2), 0.0)
    np.testing.assert_array_equal(efficiency, expected)


def test_every_operator_and_function_against_numpy() -> None:
    a, b = VOLTAGE / 100, CURRENT
    text = "abs(-a + +b) ** 2 - max(a, b, 3.5) * min(b, 2) / (a - 1) + (a >= b) - (b != 2)"
    got = parse_expression(text).evaluate({"a": a, "b": b})
    expected = (
        np.abs(-a + b) ** 2
        - np.maximum(np.maximum(a, b), 3.5) * np.minimum(b, 2) / (a - 1)
        + (a >= b).astype(float)
        - (b != 2).astype(float)
    )
    np.testing.assert_array_equal(got, expected)
    chained = parse_expression("1 < a < b").evaluate({"a": a, "b": b})
    np.testing.assert_array_equal(chained, ((1 < a) & (a < b)).astype(float))


def test_no_data_spreads_and_non_finite_results_are_no_data() -> None:
    a = np.array([1.0, np.nan, 4.0, 0.0, -1.0])
    b = np.array([2.0, 1.0, np.nan, 0.0, 0.5])
    result = parse_expression("where(a > b, a, b) + max(a, b) * 0 + a / b").evaluate(
        {"a": a, "b": b}
    )
    # 1: NaN in a, 2: NaN in b (the condition is unknown too), 3: 0/0, 4: 0.5 + -1/0.5.
    np.testing.assert_array_equal(result, [2.5, np.nan, np.nan, np.nan, -1.5])
    assert np.isnan(parse_expression("a / 0").evaluate({"a": np.array([1.0])})).all()


def test_evaluation_needs_every_input_of_the_same_length() -> None:
    expression = parse_expression("a * b")
    with pytest.raises(ExpressionError, match="no values given for b"):
        expression.evaluate({"a": np.ones(3)})
    with pytest.raises(ExpressionError, match="different lengths"):
        expression.evaluate({"a": np.ones(3), "b": np.ones(4)})
