"""Apply a check's conditions to its observation. No I/O here: only judgement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsgate.conditions import Condition, Unmeasurable, format_value
from opsgate.config.base import CheckBase, Pair
from opsgate.observation import MISSING, Observation
from opsgate.outcome import Judgement, Outcome


def evaluate(check: CheckBase, observation: Observation) -> Outcome:
    """Judge ``observation`` against ``check``; errors when a value cannot be judged."""
    return judge_pairs(list(check.pairs(observation)))


def judge_pairs(pairs: list[Pair]) -> Outcome:
    """Judge each pair: failed if any is measured false (a fail seen is a fail, even when
    other pairs could not be judged), else error if any cannot be judged, else passed."""
    judgements = [_judge(*pair) for pair in pairs]
    if not judgements:
        return Outcome("error", "nothing was measured", judgements, reason="no_data")
    unjudged = [j for j in judgements if j.ok is None]
    failed = [j for j in judgements if j.ok is False]
    if failed:
        return Outcome("failed", "; ".join(j.text for j in failed + unjudged), judgements)
    if unjudged:
        return Outcome("error", "; ".join(j.text for j in unjudged), judgements,
                       reason="no_data")
    return Outcome("passed", "; ".join(j.text for j in judgements), judgements)


def _judge(label: str, value: Any, condition: Condition,
           points: list[tuple[float, Any]] | None) -> Judgement:
    if value is MISSING:
        return Judgement(label, condition.text, None, None,
                         f"{label}: the response has no JSON body to read; {condition.text}")
    if points:
        return _judge_points(label, condition, points)
    try:
        ok = condition.check(value)
    except Unmeasurable as exc:
        return Judgement(label, condition.text, value, None,
                         f"{label}: could not judge {condition.text} ({exc})")
    if value is None and condition.op == "exists":
        return Judgement(label, condition.text, value, ok, f"{label} (missing) exists")
    return Judgement(label, condition.text, value, ok, condition.describe(label, value))


def _judge_points(label: str, condition: Condition,
                  points: list[tuple[float, Any]]) -> Judgement:
    """Every point of a range must hold; show the first that does not."""
    bad: list[tuple[float, Any]] = []
    for timestamp, value in points:
        try:
            if not condition.check(value):
                bad.append((timestamp, value))
        except Unmeasurable as exc:
            return Judgement(label, condition.text, value, None,
                             f"{label}: could not judge {condition.text} at {_at(timestamp)} "
                             f"({exc})")
    if bad:
        timestamp, value = bad[0]
        text = (f"{label} ({format_value(value)} at {_at(timestamp)}; {len(bad)} of "
                f"{len(points)} points) {condition.text}")
        return Judgement(label, condition.text, value, False, text)
    last = points[-1][1]
    text = f"{label} ({format_value(last)} last; all {len(points)} points) {condition.text}"
    return Judgement(label, condition.text, last, True, text)


def _at(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%SZ")
