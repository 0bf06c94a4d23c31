"""How a check's pairs become one outcome: a fail seen is a fail; could-not-judge never passes."""

from __future__ import annotations

from opsgate.conditions import Condition, format_value
from opsgate.config.base import Pair
from opsgate.evaluate import judge_pairs
from opsgate.observation import MISSING


def pair(label: str, value: object, condition: str) -> Pair:
    return Pair(label, value, Condition.parse(condition))


def test_a_measured_fail_beside_an_unjudged_value_is_failed_and_names_both() -> None:
    outcome = judge_pairs([pair("status", 200, "== 403"), pair("error", None, "== denied")])
    assert outcome.status == "failed"
    assert "status (200) == 403" in outcome.message
    assert "error" in outcome.message


def test_an_unjudged_value_without_any_fail_is_an_error() -> None:
    outcome = judge_pairs([pair("status", 403, "== 403"), pair("body", MISSING, "== x")])
    assert outcome.status == "error"
    assert outcome.reason == "no_data"


def test_nan_beside_passing_pairs_is_an_error() -> None:
    outcome = judge_pairs([pair("a", 1, "== 1"), pair("b", float("nan"), "< 5")])
    assert outcome.status == "error"


def test_no_pairs_is_an_error() -> None:
    assert judge_pairs([]).status == "error"


def test_all_true_passes() -> None:
    assert judge_pairs([pair("a", 1, "== 1"), pair("b", "ok", "equals ok")]).status == "passed"


def test_booleans_are_written_as_json_writes_them() -> None:
    assert format_value(False) == "false"
    assert format_value(True) == "true"
    assert Condition.parse("== true").describe("payoutsEnabled", False) == \
        "payoutsEnabled (false) == true"
