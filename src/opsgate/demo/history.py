"""Two hours of the demo's metrics before it started, as OpenMetrics text for ``promtool``.

The series carry the labels the live scrape gives (``job="opsgate-demo"`` and the demo's
``instance``), so the live samples continue them. Counters restart from zero in the live
process: ``rate()`` and ``increase()`` read that as a counter reset, as after any restart.
Healthy history is steady; a fault bends the last ``FAULT_MINUTES`` (the incident).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from opsgate.demo.metrics import BUCKETS, CONSUMER_GROUP
from opsgate.demo.seed import DLQ_BURST, LAG_BACKLOG

JOB = "opsgate-demo"
STEP_S = 15.0
SPAN_S = 2 * 3600.0
FAULT_MINUTES = 30
HEALTHY_DLQ = 2

#: Cumulative share of requests at or under each bucket bound.
HEALTHY_LATENCY = (0.05, 0.2, 0.55, 0.8, 0.97, 0.995, 1.0, 1.0, 1.0, 1.0)
SLOW_LATENCY = (0.0, 0.02, 0.05, 0.15, 0.3, 0.5, 0.8, 0.95, 1.0, 1.0)
HEALTHY_MEAN_S, SLOW_MEAN_S = 0.03, 0.45
ERROR_SHARE = 0.3


@dataclass(frozen=True)
class Route:
    """A route of the demo and its steady traffic."""

    method: str
    route: str
    per_second: float


ROUTES = (Route("GET", "/health", 1.0), Route("GET", "/api/ops/status", 0.5),
          Route("POST", "/api/jobs", 2.0), Route("GET", "/api/jobs/<int:job_id>", 3.0),
          Route("POST", "/api/payments", 3.0))


def openmetrics(faults: frozenset[str], instance: str, end: float, *,
                span: float = SPAN_S, step: float = STEP_S) -> str:
    """The OpenMetrics text of ``span`` seconds of history ending at ``end`` (Unix time)."""
    times = [end - span + i * step for i in range(int(span // step) + 1)]
    incident = end - FAULT_MINUTES * 60
    base = {"job": JOB, "instance": instance}
    lines: list[str] = []
    lines += _http_families(faults, base, times, incident, step)
    lines += _gauges(faults, base, times, incident, end)
    lines += _counters(faults, base, times, incident, step)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _sample(name: str, labels: dict[str, str], value: float, at: float) -> str:
    return f"{name}{_labels(labels)} {floatToGoString(value)} {at:.3f}"


def _http_families(faults: frozenset[str], base: dict[str, str], times: list[float],
                   incident: float, step: float) -> Iterator[str]:
    """``http_request_duration_seconds`` (histogram) and ``http_requests_total``."""
    yield "# TYPE http_request_duration_seconds histogram"
    for route in ROUTES:
        labels = {**base, "method": route.method, "route": route.route}
        buckets, count, total = [0.0] * len(BUCKETS), 0.0, 0.0
        for at in times:
            slow = "slow_p95" in faults and at >= incident
            shares = SLOW_LATENCY if slow else HEALTHY_LATENCY
            n = round(route.per_second * step)
            buckets = [b + round(n * share) for b, share in zip(buckets, shares, strict=True)]
            count += n
            total += n * (SLOW_MEAN_S if slow else HEALTHY_MEAN_S)
            for bound, value in zip(BUCKETS, buckets, strict=True):
                yield _sample("http_request_duration_seconds_bucket",
                              {**labels, "le": floatToGoString(bound)}, value, at)
            yield _sample("http_request_duration_seconds_bucket", {**labels, "le": "+Inf"},
                          count, at)
            yield _sample("http_request_duration_seconds_count", labels, count, at)
            yield _sample("http_request_duration_seconds_sum", labels, round(total, 3), at)
    yield "# TYPE http_requests counter"
    for route in ROUTES:
        ok = errors = 0
        for at in times:
            n = round(route.per_second * step)
            failing = round(n * ERROR_SHARE) if "error_spike" in faults and at >= incident else 0
            ok, errors = ok + n - failing, errors + failing
            for status, value in (("200", ok), ("500", errors)):
                yield _sample("http_requests_total", {**base, "method": route.method,
                                                      "route": route.route, "status": status},
                              value, at)


def _ramp(at: float, incident: float, end: float, start: float, top: float) -> float:
    """``start`` until the incident, then a straight line to ``top`` at ``end``."""
    if at < incident:
        return start
    return start + (top - start) * (at - incident) / (end - incident)


def _points(name: str, labels: dict[str, str], times: list[float],
            value: Callable[[float], float]) -> Iterator[str]:
    for at in times:
        yield _sample(name, labels, value(at), at)


def _gauges(faults: frozenset[str], base: dict[str, str], times: list[float],
            incident: float, end: float) -> Iterator[str]:
    """DLQ size, consumer lag, sync time and queue depth, as the incident had them.

    ``up`` is not backfilled: only a live scrape may say the demo is up.
    """
    dlq_top = HEALTHY_DLQ + (DLQ_BURST if "dlq_growing" in faults else 0)
    lag_top = LAG_BACKLOG if "lag_growing" in faults else 0
    synced_until = end - 20 * 60 if "sync_stale" in faults else float("inf")
    worker_died = end - 6 * 60 if "stale_heartbeat" in faults else float("inf")
    yield "# TYPE outbox_dead_letters gauge"
    yield from _points("outbox_dead_letters", base, times,
                       lambda at: round(_ramp(at, incident, end, HEALTHY_DLQ, dlq_top)))
    yield "# TYPE consumer_lag_messages gauge"
    yield from _points("consumer_lag_messages", {**base, "consumer_group": CONSUMER_GROUP},
                       times, lambda at: round(_ramp(at, incident, end, 0, lag_top)))
    yield "# TYPE sync_last_success_timestamp_seconds gauge"
    yield from _points("sync_last_success_timestamp_seconds", base, times,
                       lambda at: float(int(min(at, synced_until)) // 5 * 5))
    yield "# TYPE job_queue_depth gauge"
    yield from _points("job_queue_depth", {**base, "state": "queued"}, times,
                       lambda at: (at - worker_died) // 5 + 1 if at >= worker_died else 0)
    yield from _points("job_queue_depth", {**base, "state": "running"}, times, lambda at: 0)


def _counters(faults: frozenset[str], base: dict[str, str], times: list[float],
              incident: float, step: float) -> Iterator[str]:
    """Counters that stay flat while healthy and climb during their fault."""
    climbing = {
        "insights_errors": ({}, "failed_jobs", 1 / 5),
        "job_lock_contended": ({"job_name": "insights"}, "stuck_lock", 1 / 5),
        "idempotency_conflicts": ({}, "conflict_spike", 2.0),
    }
    for family, (labels, fault, per_second) in climbing.items():
        yield f"# TYPE {family} counter"
        value = 0.0
        for at in times:
            if fault in faults and at >= incident:
                value += per_second * step
            yield _sample(f"{family}_total", {**base, **labels}, value, at)
