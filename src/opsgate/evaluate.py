"""Apply a check's conditions to its observation. No I/O here: only judgement."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jmespath

from opsgate.conditions import Condition, Unmeasurable, format_value
from opsgate.config.schema import Check, HttpCheck, PromqlCheck, SqlCheck
from opsgate.observation import Observation, Subject
from opsgate.outcome import Judgement, Outcome

_MISSING = object()


def evaluate(check: Check, observation: Observation) -> Outcome:
    """Judge ``observation`` against ``check``; errors when a value cannot be judged."""
    pairs = list(_pairs(check, observation))
    judgements = [_judge(label, value, condition, points) for label, value, condition, points
                  in pairs]
    if not judgements:
        return Outcome("error", "nothing was measured", judgements, reason="no_data")
    unjudged = [j for j in judgements if j.ok is None]
    if unjudged:
        return Outcome("error", "; ".join(j.text for j in unjudged), judgements,
                       reason="no_data")
    failed = [j for j in judgements if not j.ok]
    if failed:
        return Outcome("failed", "; ".join(j.text for j in failed), judgements)
    return Outcome("passed", "; ".join(j.text for j in judgements), judgements)


def _pairs(check: Check, obs: Observation):
    """(label, value, condition, points) for every condition of the check."""
    if isinstance(check, HttpCheck):
        yield from _http_pairs(check, obs)
    elif isinstance(check, SqlCheck):
        if check.violations:
            yield "violations", obs.fields.get("violations"), Condition.parse("== 0"), None
        else:
            for subject in obs.subjects:
                yield check.label or subject.label, subject.value, check.expect, None
    elif isinstance(check, PromqlCheck):
        for subject in obs.subjects:
            yield _series_label(check, subject), subject.value, check.expect, subject.points


def _http_pairs(check: HttpCheck, obs: Observation):
    expect = check.expect
    fields = obs.fields
    if expect.status is not None:
        yield "status", fields.get("status"), expect.status, None
    if expect.latency_ms is not None:
        yield "latency_ms", fields.get("latency_ms"), expect.latency_ms, None
    headers = fields.get("headers") or {}
    for name, condition in expect.headers.items():
        yield f"header {name}", headers.get(name.lower()), condition, None
    for expression, condition in expect.json_fields.items():
        yield f"json {expression}", _json_field(fields.get("json", _MISSING), expression), \
            condition, None
    if expect.body is not None:
        yield "body", fields.get("body"), expect.body, None


def _json_field(document: Any, expression: str) -> Any:
    if document is _MISSING or document is None:
        return _MISSING
    return jmespath.search(expression, document)


def _series_label(check: PromqlCheck, subject: Subject) -> str:
    if check.label and subject.label.startswith("{"):
        return f"{check.label}{subject.label}"
    return check.label or subject.label


def _judge(label: str, value: Any, condition: Condition,
           points: list[tuple[float, Any]] | None) -> Judgement:
    if value is _MISSING:
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
