"""The demo's background threads: the job worker, the schedulers, the outbox relay, and the
threads some faults add (a growing DLQ, a stalled consumer, a retrying client, a stuck lock).

Every loop stops when the context's ``stopping`` event is set; :meth:`Loops.stop` joins them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection, func, select, text, update

from opsgate.demo import jobs, outbox
from opsgate.demo.context import ROLLUP_INTERVAL_S, DemoContext
from opsgate.demo.database import utcnow
from opsgate.demo.seed import IN_FLIGHT_BODY, IN_FLIGHT_KEY
from opsgate.demo.tables import job_runs, read_model_events, rollups

log = logging.getLogger(__name__)
INSIGHTS_LOCK = 7_041_001
JOB_WORK_S = 0.3
HEARTBEAT_EVERY_S = 1.0
SCHEDULE_EVERY_S = 5.0


class Loops:
    """Named threads that each run one step every ``interval`` seconds until stopped."""

    def __init__(self, context: DemoContext):
        self.context = context
        self.threads: list[threading.Thread] = []

    def every(self, name: str, interval: float, step: Callable[[], None]) -> None:
        """Run ``step`` now and then every ``interval`` seconds in its own thread."""
        thread = threading.Thread(target=self._run, args=(name, interval, step),
                                  name=f"opsgate-demo-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, name: str, interval: float, step: Callable[[], None]) -> None:
        stopping = self.context.stopping
        while not stopping.is_set():
            try:
                step()
            except Exception:  # a loop logs and goes on, like a real worker
                if not stopping.is_set():
                    log.exception("demo loop %s failed", name)
            if stopping.wait(interval):
                break

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every loop to stop and wait for them."""
        self.context.stopping.set()
        for thread in self.threads:
            thread.join(timeout)


class JobWorker:
    """Claims queued jobs one at a time, runs them, and beats its heartbeat."""

    def __init__(self, context: DemoContext):
        self.context = context
        self.last_beat = 0.0
        self.local_lock = threading.Lock()

    def step(self) -> None:
        """Beat when due, then run the oldest queued job if there is one."""
        engine = self.context.engine
        with engine.begin() as conn:
            if time.monotonic() - self.last_beat >= HEARTBEAT_EVERY_S:
                jobs.beat(conn, utcnow())
                self.last_beat = time.monotonic()
            claimed = jobs.claim_next(conn, utcnow())
        if claimed is None:
            return
        job_id, kind = claimed
        time.sleep(JOB_WORK_S)
        with engine.begin() as conn:
            status, error = self._run(conn, kind)
            jobs.finish(conn, job_id, status, utcnow(), error)
            if status == "succeeded":
                outbox.add_event(conn, "job.succeeded", {"job": job_id, "kind": kind}, utcnow())

    def _run(self, conn: Connection, kind: str) -> tuple[str, str | None]:
        if kind != "insights":
            return "succeeded", None
        if not self._lock(conn):
            self.context.metrics.lock_contended.labels(job_name="insights").inc()
            return "skipped", "lock held by another session"
        try:
            if self.context.has("failed_jobs"):
                self.context.metrics.insights_errors.inc()
                return "failed", "insights: division by zero in weekly trend"
            return "succeeded", None
        finally:
            if self.context.backend != "postgresql":
                self.local_lock.release()

    def _lock(self, conn: Connection) -> bool:
        """The insights job's lock: a transaction advisory lock on PostgreSQL."""
        if self.context.backend == "postgresql":
            return bool(conn.scalar(text("select pg_try_advisory_xact_lock(:key)"),
                                    {"key": INSIGHTS_LOCK}))
        return self.local_lock.acquire(blocking=False)


class StuckLock:
    """A dead worker's session: idle in a transaction that holds the insights lock."""

    def __init__(self, context: DemoContext):
        self.context = context
        self.connection: Connection | None = None

    def start(self) -> None:
        """Take the lock and go idle."""
        self.connection = self.context.engine.connect()
        self.connection.begin()
        self.connection.execute(text("select pg_advisory_xact_lock(:key)"),
                                {"key": INSIGHTS_LOCK})

    def stop(self) -> None:
        """Roll back (which releases the lock) and close."""
        if self.connection is not None:
            try:
                self.connection.rollback()
                self.connection.close()
            finally:
                self.connection = None


def schedule_insights(context: DemoContext) -> None:
    """The scheduler: queue the insights job."""
    with context.engine.begin() as conn:
        jobs.enqueue(conn, "insights", utcnow())


def relay(context: DemoContext) -> None:
    """Publish pending outbox events (the read model is not fed with ``read_model_stale``)."""
    with context.engine.begin() as conn:
        outbox.publish_pending(conn, utcnow(), materialized=not context.has("read_model_stale"))


def rollup(context: DemoContext) -> None:
    """The analytics rollup cron: materialize today's bucket and record the run."""
    now = utcnow()
    today = now.date()
    start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with context.engine.begin() as conn:
        events = conn.scalar(select(func.count()).select_from(read_model_events)
                             .where(read_model_events.c.materialized_at >= start_of_day)) or 0
        changed = conn.execute(update(rollups).where(rollups.c.bucket_date == today)
                               .values(events=events, materialized_at=now)).rowcount
        if not changed:
            conn.execute(rollups.insert().values(bucket_date=today, events=events,
                                                 materialized_at=now))
        conn.execute(job_runs.insert().values(job_name="analytics-rollup", status="succeeded",
                                              started_at=now, finished_at=now))


def sync(context: DemoContext) -> None:
    """The mobile sync succeeded just now."""
    context.metrics.sync_last_success.set(time.time())


def add_dead_letter(context: DemoContext) -> None:
    """``dlq_growing``: one more event lands in the DLQ."""
    now = utcnow()
    with context.engine.begin() as conn:
        event_id = outbox.add_event(conn, "payment.captured", {"late": True}, now)
        outbox.dead_letter(conn, event_id, "contract drift: unknown field 'tip'", "payments",
                           now)


def produce_events(context: DemoContext) -> None:
    """``lag_growing``: producers keep writing while the consumer is stopped."""
    with context.engine.begin() as conn:
        outbox.add_event(conn, "ledger.entry_posted", {"backlog": True}, utcnow())


def retry_in_flight(base_url: str) -> Callable[[], None]:
    """``conflict_spike``: a client retrying a payment whose first attempt is in flight."""
    body = json.dumps(IN_FLIGHT_BODY).encode()

    def step() -> None:
        request = urllib.request.Request(
            f"{base_url}/api/payments", data=body, method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": IN_FLIGHT_KEY})
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError as answer:  # 409, as expected
            answer.close()

    return step


def start_loops(context: DemoContext, base_url: str) -> Loops:
    """Start the threads the demo (and its faults) run."""
    loops = Loops(context)
    faults = context.faults
    if "stale_heartbeat" not in faults:
        loops.every("worker", 0.1, JobWorker(context).step)
    loops.every("scheduler", SCHEDULE_EVERY_S, lambda: schedule_insights(context))
    if "lag_growing" not in faults:
        loops.every("relay", 0.5, lambda: relay(context))
    else:
        loops.every("producer", 0.5, lambda: produce_events(context))
    if "stale_rollup" not in faults:
        loops.every("rollup", ROLLUP_INTERVAL_S, lambda: rollup(context))
    if "sync_stale" not in faults:
        loops.every("sync", 5.0, lambda: sync(context))
    else:
        stale = context.started_at - timedelta(minutes=20)
        context.metrics.sync_last_success.set(stale.timestamp())
    if "dlq_growing" in faults:
        loops.every("dead-letters", 2.0, lambda: add_dead_letter(context))
    if "conflict_spike" in faults:
        loops.every("retrying-client", 0.5, retry_in_flight(base_url))
    return loops
