"""PromQL probe (Prometheus HTTP API through httpx): instant and range queries.

Fail closed: an HTTP error, an ``error`` status, any ``warnings`` (partial data) and an empty
result raise; NaN and infinite values are left for the condition to refuse. A range query
asks for at most ``MAX_POINTS`` points per series: a finer step is raised and the evidence
says so.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from opsgate.deadline import Deadline
from opsgate.durations import format_duration
from opsgate.errors import NoData, ProbeConnectionError, ProbeQueryError, ProbeTimeout
from opsgate.observation import Observation, Subject, utcnow

MAX_POINTS = 1100
EVIDENCE_POINTS = 200
EVIDENCE_SERIES = 50


def range_window(last: float, step: float, now: float | None = None) -> dict[str, Any]:
    """start, end and step for the last ``last`` seconds, step raised to stay in MAX_POINTS."""
    end = time.time() if now is None else now
    needed = last / (MAX_POINTS - 1)
    window: dict[str, Any] = {"start": end - last, "end": end, "step": max(step, needed)}
    if window["step"] > step:
        window["note"] = (f"step raised from {format_duration(step)} to "
                          f"{window['step']:.3g}s to stay within {MAX_POINTS} points per series")
    return window


def probe_promql(client: httpx.Client, base_url: str, headers: dict[str, str], query: str,
                 deadline: Deadline, *, window: dict[str, Any] | None = None,
                 at: float | None = None, full_range: bool = True) -> Observation:
    """Run ``query`` at ``at`` (default now) or over ``window``; one Subject per series."""
    started = utcnow()
    if window is None:
        path = "/api/v1/query"
        params: dict[str, Any] = {"query": query, "time": f"{at or time.time():.3f}"}
        asked = {"query": query, "time": params["time"]}
    else:
        path = "/api/v1/query_range"
        params = {"query": query, "start": f"{window['start']:.3f}",
                  "end": f"{window['end']:.3f}", "step": f"{window['step']:g}"}
        asked = {"query": query, "range": {k: window[k] for k in ("start", "end", "step")}}
        if "note" in window:
            asked["note"] = window["note"]
    asked["url"] = base_url.rstrip("/") + path
    left = deadline.check("querying Prometheus")
    params["timeout"] = f"{int(max(left - 0.2, 0.1) * 1000)}ms"
    data = _get(client, asked["url"], params, headers, left, asked)
    try:
        subjects, seen = _subjects(data, asked)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ProbeQueryError(f"Prometheus answered in a shape opsgate cannot read "
                              f"({type(exc).__name__}: {exc})", asked=asked,
                              seen={"data": str(data)[:1000]}) from exc
    expected = ("matrix",) if window is not None else _instant_types(query)
    if seen.get("result_type") not in expected:
        raise ProbeQueryError(f"Prometheus answered a {seen.get('result_type')!r} result to a "
                              f"{'range' if window else 'instant'} query", asked=asked, seen=seen)
    if window is not None and full_range:
        _require_coverage(subjects, window, asked, seen)
    return Observation("promql", asked, seen, {}, subjects, started_at=started,
                       finished_at=utcnow())


def _get(client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str],
         timeout: float, asked: dict[str, Any]) -> dict[str, Any]:
    try:
        response = client.get(url, params=params, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise ProbeTimeout(f"Prometheus did not answer within {timeout:.3g}s",
                           asked=asked) from exc
    except httpx.HTTPError as exc:
        raise ProbeConnectionError(f"could not reach Prometheus at {url}: {exc}",
                                   asked=asked) from exc
    seen = {"status": response.status_code,
            "body_excerpt": response.text[:1000] + ("..." if len(response.text) > 1000 else "")}
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise ProbeQueryError(f"Prometheus answered HTTP {response.status_code} without a JSON "
                              "API response", asked=asked, seen=seen)
    if response.status_code != 200 or payload.get("status") != "success":
        reason = payload.get("error") or f"HTTP {response.status_code}"
        raise ProbeQueryError(f"Prometheus rejected the query ({payload.get('errorType', 'error')}"
                              f"): {reason}", asked=asked, seen=seen)
    if payload.get("warnings"):
        raise NoData("Prometheus answered with warnings (the data may be partial): "
                     + "; ".join(map(str, payload["warnings"])), asked=asked,
                     seen={"warnings": payload["warnings"]})
    return payload.get("data") or {}


def _subjects(data: dict[str, Any], asked: dict[str, Any]) -> tuple[list[Subject], dict]:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" or kind == "string":
        value = _number(result[1]) if isinstance(result, list) else None
        return [Subject("value", value)], {"result_type": kind, "value": value}
    if not result:
        raise NoData("the query returned no series (empty result): nothing was measured",
                     asked=asked, seen={"result_type": kind, "series": []})
    subjects, series = [], []
    for item in result:
        label = format_labels(item.get("metric") or {})
        if kind == "matrix":
            points = [(float(ts), _number(value)) for ts, value in item.get("values", [])]
            subjects.append(Subject(label, points[-1][1] if points else None, points))
            series.append({"metric": item.get("metric"), "points": len(points),
                           "values": points[-EVIDENCE_POINTS:]})
        else:
            value = _number(item["value"][1])
            subjects.append(Subject(label, value))
            series.append({"metric": item.get("metric"), "value": value})
    seen = {"result_type": kind, "series": series[:EVIDENCE_SERIES], "series_count": len(series)}
    return subjects, seen


def _number(text: Any) -> float:
    """Prometheus sends sample values as strings; NaN and Inf stay floats (never judged)."""
    if not isinstance(text, str | int | float) or isinstance(text, bool):
        raise TypeError(f"a sample value must be a number, got {text!r}")
    return float(text)


def _instant_types(query: str) -> tuple[str, ...]:
    """The result types an instant query may answer with: what the query's own AST says."""
    from opsgate.config.promqlcheck import result_type

    try:
        return (result_type(query),)
    except ValueError:  # could not tell: accept what an instant query can answer
        return ("vector", "scalar")


MIN_COVERAGE = 0.8


def _require_coverage(subjects: list[Subject], window: dict[str, Any], asked: dict[str, Any],
                      seen: dict[str, Any]) -> None:
    """A range condition holds "for 15 minutes" only if the data covers 80% of the span."""
    expected = int((window["end"] - window["start"]) // window["step"]) + 1
    needed = max(2, math.ceil(MIN_COVERAGE * (expected - 1)))
    short = [(s.label, len(s.points or [])) for s in subjects if len(s.points or []) < needed]
    if short:
        label, count = short[0]
        raise NoData(f"partial data: {label} has {count} of {expected} points over the range; "
                     f"at least {needed} are needed to judge it", asked=asked, seen=seen)


def format_labels(metric: dict[str, str]) -> str:
    """``{route="/x",status="500"}`` (the metric name first when present)."""
    name = metric.get("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels else (name or "{}")
