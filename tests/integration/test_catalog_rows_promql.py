"""Catalog rows H7, Q1, Q9, Q11, M3 and S3 (Prisma pool) over real Prometheus history.

The checks are the example environments' own PromQL, unchanged (``example_check``). Two
Prometheus servers serve backfilled history: ``healthy`` (every target up, no dead letters,
flat or falling consumer lag, jobs well under their limit, syncs fresh, pools half idle) and
``sick`` (one scrape target down, 5% of events dead-lettered, one consumer group's lag
growing, one job four times too long, one tenant's sync 20 minutes old, one pod's pool nearly
full; the down target is a real scrape of a port nothing listens on).
``H7-prometheus-ready`` asks the healthy Prometheus's ``/-/ready`` and, for ``sick``, a
server answering it the way Prometheus does while it is not ready (503). One run measures both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.support.catalog import Run, example_check, run_catalog, write_environment
from tests.support.prometheus import constant, free_port, history, openmetrics, wait_for

OB, PVM = "orya-obraflow.example", "mvp-backend.example"
MINUTES = 20
STEP = 15.0
CHECKS = [(OB, "H7-scrape-up"), (OB, "H7-prometheus-ready"), (OB, "Q1-kafka-dlq-ratio"),
          (OB, "Q9-consumer-lag-trend"), (PVM, "Q11-job-duration"), (OB, "M3-sync-staleness"),
          (OB, "S3-prisma-pool")]
TARGETS = ("orya-api", "work-mgmt", "sync-mobile", "kafka-exporter")
DEAD = "sync-mobile"


def counter(per_second: float, start: float = 1000.0) -> list[tuple[float, float]]:
    """A counter rising ``per_second`` for ``MINUTES``."""
    end = time.time() - 30
    return history(lambda t: start + per_second * (t - (end - MINUTES * 60)), step=STEP,
                   end=end, span=MINUTES * 60)


def series(sick: bool) -> dict[str, list[tuple[float, float]]]:
    """The history of one Prometheus: healthy, or with each row's real condition."""
    now = time.time()
    out: dict[str, list[tuple[float, float]]] = {}
    for job in TARGETS:  # H7: sick, sync-mobile is really scraped (and down): no history
        if not (sick and job == DEAD):
            out[f'up{{env="prd",job="{job}",instance="{job}:9100"}}'] = constant(
                1.0, minutes=MINUTES)
    # Q1: events consumed 100/s; dead-lettered 5/s when sick, no such series when healthy
    out['obraflow_events_consumed_total{env="prd",topic="ops-events"}'] = counter(100.0)
    if sick:
        out['obraflow_events_dead_lettered_total{env="prd",topic="ops-events"}'] = counter(5.0)
    # Q9: lag per consumer group: flat, falling, and (sick) growing 10 messages a minute
    lag = 'kafka_consumergroup_lag_sum{{env="prd",consumergroup="{}",topic="ops-events"}}'
    out[lag.format("obraflow-sync")] = constant(40.0, minutes=MINUTES)
    out[lag.format("obraflow-projections")] = history(
        (lambda t: 40 + (t - now) / 6) if sick else (lambda t: max(0.0, -(t - now) / 60)),
        step=STEP, span=MINUTES * 60)
    out[lag.format("billing-replay")] = history(lambda t: 500 + (t - now), step=STEP,
                                                span=MINUTES * 60)  # not an obraflow group
    # Q11: one run a minute; insights takes 300 s, reconcile 900 s when sick (limit 600)
    for name, seconds in (("insights", 300.0), ("reconcile", 900.0 if sick else 120.0)):
        labels = f'{{job="mvp-backend",job_name="{name}"}}'
        out[f"job_duration_seconds_sum{labels}"] = counter(seconds / 60, start=0.0)
        out[f"job_duration_seconds_count{labels}"] = counter(1 / 60, start=0.0)
    # M3: the last successful sync per tenant and site; t2 stopped 20 minutes ago when sick
    for tenant in ("t1", "t2"):
        stuck = sick and tenant == "t2"
        out[f'last_successful_sync_timestamp_seconds{{env="prd",tenant="{tenant}",site="s1"}}'] \
            = history((lambda t: now - 1200) if stuck else (lambda t: t), step=STEP,
                      end=now - 5, span=MINUTES * 60)
    # S3: Prisma pool busy / open per pod; api-2 at 90% when sick
    for pod, busy in (("api-1", 3.0), ("api-2", 9.0 if sick else 4.0)):
        labels = f'{{env="prd",app="orya-api",pod="{pod}"}}'
        out[f"prisma_pool_connections_busy{labels}"] = constant(busy, minutes=MINUTES)
        out[f"prisma_pool_connections_open{labels}"] = constant(10.0, minutes=MINUTES)
    return out


@pytest.fixture(scope="module")
def not_ready() -> Iterator[str]:
    """A server whose ``/-/ready`` answers as a Prometheus that is not ready yet (503)."""

    @Request.application
    def app(request: Request) -> Response:
        return Response("Service Unavailable", status=503, content_type="text/plain")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def run(prometheus_module, not_ready, tmp_path_factory) -> Run:
    """One run of every check against the healthy and the sick Prometheus."""
    folder = tmp_path_factory.mktemp("rows-promql")
    checks = [example_check(file, ident) for file, ident in CHECKS]
    environments = []
    dead = [{"job_name": DEAD, "scrape_interval": "1s", "static_configs": [
        {"targets": [f"127.0.0.1:{free_port()}"], "labels": {"env": "prd"}}]}]
    sick = prometheus_module(openmetrics(series(True)), scrape_configs=dead)
    healthy = prometheus_module(openmetrics(series(False)))
    for name, url, ready in (("healthy", healthy, healthy), ("sick", sick, not_ready)):
        targets = {"prometheus": {"url": url, "timeout": "5s"},
                   "http": {"prometheus-http": {"base_url": ready, "timeout": "5s"}}}
        environments.append(write_environment(folder, name, targets, checks))
    wait_for(sick, f'up{{job="{DEAD}"}} == 0', timeout=30)  # its first scrape was refused
    return run_catalog(folder, environments)


def judged(record: dict[str, Any]) -> dict[str, tuple[Any, bool | None]]:
    """Label -> (observed, ok) of a record's judgements."""
    return {j["label"]: (j["observed"], j["ok"]) for j in record["judgements"]}


def failing(record: dict[str, Any]) -> dict[str, Any]:
    """Label -> observed, of the judgements that failed."""
    return {j["label"]: j["observed"] for j in record["judgements"] if j["ok"] is False}


def test_every_check_passes_over_healthy_history(run):
    assert run.result.ret == 1, run.explain()
    assert run.outcomes("healthy") == {ident: "passed" for _, ident in CHECKS}, run.explain()


def test_every_check_fails_over_sick_history(run):
    assert run.outcomes("sick") == {ident: "failed" for _, ident in CHECKS}, run.explain()


def test_h7_a_target_down_and_prometheus_not_ready_fail(run):
    up = run.check("H7-scrape-up", "sick")
    bad = failing(up)
    assert len(bad) == 1 and f'job="{DEAD}"' in next(iter(bad)) and 0 in bad.values(), up
    assert 'instance="127.0.0.1:' in next(iter(bad))  # the real scrape, not history
    assert len(up["judgements"]) == len(TARGETS)
    assert len(run.check("H7-scrape-up", "healthy")["judgements"]) == len(TARGETS)
    assert judged(run.check("H7-prometheus-ready", "sick")) == {"status": (503, False)}
    assert judged(run.check("H7-prometheus-ready", "healthy")) == {"status": (200, True)}


def test_q1_dlq_ratio_fails_at_five_percent(run):
    (ratio,) = failing(run.check("Q1-kafka-dlq-ratio", "sick")).values()
    assert ratio == pytest.approx(0.05, rel=0.05)
    healthy = run.check("Q1-kafka-dlq-ratio", "healthy")
    assert [j["observed"] for j in healthy["judgements"]] == [0]  # `or vector(0)`: none yet


def test_q9_deriv_of_a_growing_lag_fails_per_consumer_group(run):
    sick = run.check("Q9-consumer-lag-trend", "sick")
    ((label, slope),) = failing(sick).items()
    assert 'consumergroup="obraflow-projections"' in label
    assert slope == pytest.approx(1 / 6, rel=0.05)  # 10 messages a minute
    healthy = run.check("Q9-consumer-lag-trend", "healthy")
    assert len(healthy["judgements"]) == 2  # billing-replay grows but is not an obraflow group
    assert all(j["observed"] <= 0 for j in healthy["judgements"])


def test_q11_job_duration_above_its_limit_fails_naming_the_job(run):
    ((label, seconds),) = failing(run.check("Q11-job-duration", "sick")).items()
    assert 'job_name="reconcile"' in label and seconds == pytest.approx(900, rel=0.01)
    healthy = run.check("Q11-job-duration", "healthy")
    assert max(j["observed"] for j in healthy["judgements"]) == pytest.approx(300, rel=0.01)


def test_m3_time_minus_last_sync_fails_when_a_sync_is_stale(run):
    (stale,) = failing(run.check("M3-sync-staleness", "sick")).values()
    assert 1200 <= stale < 1300
    (fresh,) = [j["observed"] for j in run.check("M3-sync-staleness", "healthy")["judgements"]]
    assert 0 <= fresh < 60


def test_s3_prisma_pool_ratio_fails_naming_the_pod(run):
    ((label, ratio),) = failing(run.check("S3-prisma-pool", "sick")).items()
    assert 'pod="api-2"' in label and ratio == pytest.approx(0.9)
