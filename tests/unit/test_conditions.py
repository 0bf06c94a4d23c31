"""Conditions read like runbooks and judge values; unjudgeable values are never a pass."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsgate.conditions import Condition, Unmeasurable


@pytest.mark.parametrize(("text", "value", "expected"), [
    ("< 0.3", 0.29, True), ("< 0.3", 0.3, False), ("<= 5", 5, True), ("> 1", 1, False),
    (">= 1", 1, True), ("== 0", 0, True), ("== 0", "0", True), ("== 200", 500, False),
    ("!= error", "ok", True), ("== ok", "ok", True), ("equals ok", "error", False),
    ("== true", True, True), ("== true", False, False), ("between 1 and 5", 5, True),
    ("between 1 and 5", 5.01, False), ("contains json", "application/json", True),
    ("matches ^2..$", 204, True), ("in [401, 403]", 401, True), ("in [401, 403]", 200, False),
    ("exists", None, False), ("exists", 0, True), ("contains b", ["a", "b"], True),
])
def test_condition_judges(text, value, expected):
    assert Condition.parse(text).check(value) is expected


@pytest.mark.parametrize("text", ["=< 3", "", "between 5 and 1", "between a and b",
                                  "in 3", "matches (", "lower than 3", "<"])
def test_bad_conditions_are_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match=r"condition|LOW|write|value|invalid"):
        Condition.parse(text)


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, "nan", "fast", [1]])
def test_unjudgeable_values_raise(value):
    with pytest.raises(Unmeasurable):
        Condition.parse("< 0.3").check(value)


def test_describe_shows_observed_beside_expectation():
    assert Condition.parse("< 0.3").describe("p95", 1.42) == "p95 (1.42) < 0.3"


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False,
       allow_infinity=False))
def test_less_than_agrees_with_python(value, bound):
    assert Condition.parse(f"< {bound!r}").check(value) is (value < bound)


def test_database_decimals_are_numbers():
    from decimal import Decimal

    assert Condition.parse("< 0.8").check(Decimal("0.11"))
    assert not Condition.parse("== 0").check(Decimal("2.50"))
