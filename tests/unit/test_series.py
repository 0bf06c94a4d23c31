"""Series conditions: parsing, every form passing and failing, unmeasurable series, and the
agreement between ``SeriesCondition.check`` and the engine's own judgement of its ``Pair``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsgate.conditions import Unmeasurable
from opsgate.evaluate import evaluate
from opsgate.kinds.window import WindowCheck
from opsgate.observation import Observation, Subject
from opsgate.series import SeriesCondition, as_number

T0 = 1_700_000_000.0  # 22:13:20Z


def series(*values: object, step: float = 60.0) -> list[tuple[float, object]]:
    return [(T0 + index * step, value) for index, value in enumerate(values)]


def judge(text: str, *values: object) -> tuple[bool, float, str]:
    return tuple(SeriesCondition.parse(text).check(series(*values), "DLQ count"))


# ---------------------------------------------------------------- every form, pass and fail
@pytest.mark.parametrize(("text", "holding", "breaking", "message"), [
    ("non_increasing", (5, 5, 3, 2), (3, 3, 4, 7),
     "DLQ count (3 -> 7, up at 22:15:20Z, 2 times) non_increasing"),
    ("non_decreasing", (1, 1, 2, 9), (4, 5, 2, 6),
     "DLQ count (4 -> 6, down at 22:15:20Z) non_decreasing"),
    ("all < 5", (1, 4, 4.9), (1, 7, 2, 8), "DLQ count (7 at 22:14:20Z; 2 of 4 points) all < 5"),
    ("all >= 1", (1, 2), (1, 0), "DLQ count (0 at 22:14:20Z; 1 of 2 points) all >= 1"),
    ("all == 0", (0, 0, 0), (0, 1, 0), "DLQ count (1 at 22:14:20Z; 1 of 3 points) all == 0"),
    ("all != 3", (1, 2), (1, 3), "DLQ count (3 at 22:14:20Z; 1 of 2 points) all != 3"),
    ("all > 0", (1, 2), (1, -2), "DLQ count (-2 at 22:14:20Z; 1 of 2 points) all > 0"),
    ("all <= 2", (2, 2), (2, 3), "DLQ count (3 at 22:14:20Z; 1 of 2 points) all <= 2"),
    ("all between 1 and 5", (1, 5), (1, 6),
     "DLQ count (6 at 22:14:20Z; 1 of 2 points) all between 1 and 5"),
    ("all in [0, 1]", (0, 1), (0, 2), "DLQ count (2 at 22:14:20Z; 1 of 2 points) all in [0, 1]"),
    ("max < 5", (1, 4), (1, 9, 2), "DLQ count (9 at 22:14:20Z) max < 5"),
    ("min > 2", (3, 4), (3, 1, 4), "DLQ count (1 at 22:14:20Z) min > 2"),
    ("mean < 3", (1, 2, 3), (2, 4, 6), "DLQ count (4 over 3 points) mean < 3"),
    ("last <= 5", (9, 5), (1, 6), "DLQ count (6 at 22:14:20Z) last <= 5"),
    ("delta <= 0", (7, 9, 3), (3, 1, 7), "DLQ count (3 -> 7: +4) delta <= 0"),
    ("delta between -1 and 1", (5, 9, 6), (5, 7), "DLQ count (5 -> 7: +2) delta between -1 and 1"),
    ("increase == 0", (4, 4, 4), (4, 5, 5, 7),
     "DLQ count (+3 over 4 points, first rise at 22:14:20Z) increase == 0"),
    ("increase < 2", (4, 5, 0, 0), (0, 1, 0, 1), "DLQ count (+2 over 4 points, first rise at "
     "22:14:20Z) increase < 2"),
])
def test_each_condition_holds_and_breaks(text, holding, breaking, message):
    ok, _, _ = judge(text, *holding)
    assert ok is True
    ok, _, said = judge(text, *breaking)
    assert ok is False
    assert said == message


def test_observed_values_are_the_reductions():
    assert judge("delta <= 0", 3, 1, 7)[1] == 4
    assert judge("increase == 0", 10, 12, 0, 5)[1] == 7  # a counter reset is not a fall
    assert judge("non_increasing", 3, 4, 9, 2)[1] == 5  # the largest rise
    assert judge("non_decreasing", 3, 1, 9, 2)[1] == -7  # the largest fall
    assert judge("mean < 9", 1, 2)[1] == 1.5


def test_numeric_strings_are_numbers_and_passing_messages_read_well():
    ok, observed, said = judge("non_increasing", "5", "5", "2")
    assert ok and observed == 0
    assert said == "DLQ count (5 -> 2, never up in 3 points) non_increasing"
    assert judge("all < 9", 1, 2)[2] == "DLQ count (2 last; all 2 points) all < 9"


# ---------------------------------------------------------------- unmeasurable series
@pytest.mark.parametrize("bad", [float("nan"), None, "ok", float("inf"), True])
@pytest.mark.parametrize("text", ["non_increasing", "all < 5", "max < 5", "delta <= 0",
                                  "increase == 0", "last <= 5"])
def test_a_gap_or_a_word_is_unmeasurable(text, bad):
    with pytest.raises(Unmeasurable):
        SeriesCondition.parse(text).check(series(1, bad, 2))


@pytest.mark.parametrize("points", [[], series(1)])
def test_too_few_points_are_unmeasurable(points):
    with pytest.raises(Unmeasurable, match="at least 2"):
        SeriesCondition.parse("non_increasing").check(points)


def test_nan_is_named_with_its_time():
    with pytest.raises(Unmeasurable, match=r"at 22:14:20Z is nan"):
        SeriesCondition.parse("max < 1").check(series(0, float("nan")))


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize(("text", "expected"), [
    ("< 5", "for every point write 'all < 5'"),
    ("rising", "is not a series condition"),
    ("max", "needs a condition such as 'max <= 5'"),
    ("mean matches ^1", "'mean' compares numbers"),
    ("all exists", "'all' compares numbers"),
    ("last < ok", '"ok" is not a number'),
    ("all in [1, x]", '"x" is not a number'),
    ("delta < ", "has no value to compare with"),
])
def test_bad_conditions_say_what_to_write(text, expected):
    with pytest.raises(ValueError) as raised:
        SeriesCondition.parse(text)
    assert expected in str(raised.value)


def test_spacing_is_normalized():
    assert SeriesCondition.parse("  delta   <=  0 ").text == "delta <= 0"
    assert SeriesCondition.parse("non_increasing").reducer == "non_increasing"


def test_as_number():
    assert as_number("3.5") == 3.5 and as_number(2) == 2.0
    for bad in (None, "x", float("nan"), False, [1]):
        with pytest.raises(Unmeasurable):
            as_number(bad)


# ---------------------------------------------------------------- properties
values = st.lists(st.integers(min_value=-1000, max_value=1000), min_size=2, max_size=40)
CONDITIONS = ["non_increasing", "non_decreasing", "all < 10", "all between -5 and 5",
              "max <= 100", "min > -3", "mean < 0", "last >= 1", "delta <= 0",
              "delta == 0", "increase == 0", "increase < 50"]


@given(st.lists(st.integers(-1000, 1000), min_size=2, max_size=40, unique=True))
def test_a_strictly_increasing_series_never_passes_non_increasing(numbers):
    rising = sorted(numbers)
    assert not SeriesCondition.parse("non_increasing").check(series(*rising)).ok
    assert SeriesCondition.parse("non_decreasing").check(series(*rising)).ok


@given(values, st.integers(-50, 50))
def test_delta_agrees_with_last_minus_first(numbers, bound):
    result = SeriesCondition.parse(f"delta <= {bound}").check(series(*numbers))
    assert result.observed == numbers[-1] - numbers[0]
    assert result.ok == (numbers[-1] - numbers[0] <= bound)


@given(values)
def test_increase_is_zero_exactly_when_the_series_never_rises(numbers):
    never_rises = SeriesCondition.parse("non_increasing").check(series(*numbers)).ok
    assert SeriesCondition.parse("increase == 0").check(series(*numbers)).ok == never_rises


@given(values, st.integers(-1000, 1000))
def test_all_below_agrees_with_max_below(numbers, bound):
    every = SeriesCondition.parse(f"all < {bound}").check(series(*numbers)).ok
    assert every == SeriesCondition.parse(f"max < {bound}").check(series(*numbers)).ok
    assert every == all(number < bound for number in numbers)


@given(values)
def test_mean_is_the_average(numbers):
    observed = SeriesCondition.parse("mean < 0").check(series(*numbers)).observed
    assert math.isclose(observed, sum(numbers) / len(numbers), abs_tol=1e-9)


def window_check(expect: str) -> WindowCheck:
    return WindowCheck.model_validate({
        "id": "W", "title": "w", "kind": "window", "window": "3s", "interval": "1s",
        "sample": {"sql": {"query": "select 1"}}, "expect": expect})


@given(st.lists(st.one_of(st.integers(-20, 20), st.just(float("nan"))), min_size=0,
                max_size=12),
       st.sampled_from(CONDITIONS))
def test_the_engine_judges_the_pair_as_check_does(numbers, text):
    """The window kind's Pair, judged by opsgate.evaluate, agrees with SeriesCondition.check."""
    points = series(*numbers)
    observation = Observation("window", {}, {}, {}, [Subject("DLQ count", None, points)])
    outcome = evaluate(window_check(text), observation)
    try:
        result = SeriesCondition.parse(text).check(points, "DLQ count")
    except Unmeasurable:
        assert outcome.status == "error"
        return
    assert outcome.status == ("passed" if result.ok else "failed")
    assert outcome.message == result.text
