"""The demo's Prometheus metrics, in a registry of its own (never the global one).

Names and labels are the ones :mod:`opsgate.demo.history` backfills, so the live series
continue the history: ``http_request_duration_seconds`` and ``http_requests_total`` per route,
``insights_errors_total``, ``job_lock_contended_total``, ``idempotency_conflicts_total``,
``sync_last_success_timestamp_seconds``, and gauges read from the database at each scrape
(``outbox_dead_letters``, ``consumer_lag_messages``, ``job_queue_depth``). Prometheus adds
``job`` and ``instance``; no metric here uses those label names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from opsgate.demo import jobs
from opsgate.demo.tables import dead_letters, outbox

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONSUMER_GROUP = "read-models"
log = logging.getLogger(__name__)


class DemoMetrics:
    """Every metric the demo exposes on ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "http_request_duration_seconds", "HTTP request duration by route",
            ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self.requests = Counter("http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.insights_errors = Counter("insights_errors", "Failed runs of the insights job",
                                       registry=self.registry)
        self.lock_contended = Counter("job_lock_contended",
                                      "Job runs skipped because their lock was held",
                                      ["job_name"], registry=self.registry)
        self.lock_contended.labels(job_name="insights")
        self.idempotency_conflicts = Counter(
            "idempotency_conflicts", "409 answers: an Idempotency-Key still in flight",
            registry=self.registry)
        self.sync_last_success = Gauge(
            "sync_last_success_timestamp_seconds", "Unix time of the last successful sync",
            registry=self.registry)

    def watch_database(self, engine: Engine) -> None:
        """Expose the gauges read from ``engine`` at each scrape."""
        self.registry.register(DatabaseGauges(engine))


class DatabaseGauges(Collector):
    """DLQ size, consumer lag and queue depth, counted by the database when scraped."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def describe(self) -> list:
        """No description up front: the registry must not query the database at start."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One small read per scrape; nothing when the database does not answer."""
        try:
            with self.engine.connect() as conn:
                dlq = conn.scalar(select(func.count()).select_from(dead_letters)
                                  .where(dead_letters.c.replayed_at.is_(None)))
                lag = conn.scalar(select(func.count()).select_from(outbox)
                                  .where(outbox.c.status == "pending"))
                depth = jobs.depth(conn)
        except Exception as exc:  # a scrape must not fail because the database did
            log.warning("metrics: cannot read the database: %s", exc)
            return
        yield GaugeMetricFamily("outbox_dead_letters", "Dead letters waiting in the DLQ",
                                value=dlq or 0)
        lag_family = GaugeMetricFamily("consumer_lag_messages",
                                       "Events not yet consumed, by consumer group",
                                       labels=["consumer_group"])
        lag_family.add_metric([CONSUMER_GROUP], lag or 0)
        yield lag_family
        depth_family = GaugeMetricFamily("job_queue_depth", "Jobs by state",
                                         labels=["state"])
        for state, count in depth.items():
            depth_family.add_metric([state], count)
        yield depth_family
