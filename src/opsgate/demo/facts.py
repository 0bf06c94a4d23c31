"""The triage facts of the MVP playbook (its first ten minutes), read from the database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, text

from opsgate.demo import jobs
from opsgate.demo.context import HEARTBEAT_FRESH_S, DemoContext
from opsgate.demo.database import as_utc, utcnow
from opsgate.demo.tables import dead_letters, job_runs, webhook_events
from opsgate.demo.tables import jobs as jobs_table


def database_ok(engine: Engine) -> bool:
    """Whether ``select 1`` answers."""
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False


def triage(context: DemoContext) -> dict[str, Any]:
    """``ready_ok``, ``db_ok``, worker and heartbeat, queue depth, failures, dead letters."""
    now = utcnow()
    db_ok = database_ok(context.health_engine)
    with context.engine.connect() as conn:
        beat = jobs.last_beat(conn)
        age = round((now - beat).total_seconds(), 1) if beat else None
        facts = {
            "ready_ok": db_ok,
            "db_ok": db_ok,
            "worker_running": age is not None and age < HEARTBEAT_FRESH_S,
            "heartbeat_age_s": age,
            "queue_depth": jobs.depth(conn),
            "webhook_failed_last_hour": _count(conn, webhook_events, now - timedelta(hours=1),
                                               webhook_events.c.received_at,
                                               webhook_events.c.status == "failed"),
            "jobs_failed_last_hour": _count(conn, jobs_table, now - timedelta(hours=1),
                                            jobs_table.c.updated_at,
                                            jobs_table.c.status == "failed"),
            "dead_letters_last_24h": _count(conn, dead_letters, now - timedelta(hours=24),
                                            dead_letters.c.created_at),
        }
    return facts


def _count(conn: Any, table: Any, since: datetime, column: Any, *where: Any) -> int:
    query = select(func.count()).select_from(table).where(column >= since, *where)
    return int(conn.scalar(query) or 0)


def cron_status(context: DemoContext, name: str, interval_s: int) -> dict[str, Any]:
    """A scheduled job's last success and its age."""
    now = utcnow()
    with context.engine.connect() as conn:
        last_ok = conn.scalar(select(func.max(job_runs.c.finished_at)).where(
            job_runs.c.job_name == name, job_runs.c.status == "succeeded"))
        last_status = conn.scalar(select(job_runs.c.status).where(job_runs.c.job_name == name)
                                  .order_by(job_runs.c.id.desc()).limit(1))
    last = as_utc(last_ok) if last_ok is not None else None
    return {"name": name, "interval_s": interval_s,
            "last_success_at": last.isoformat() if last else None,
            "last_success_age_s": round((now - last).total_seconds(), 1) if last else None,
            "last_status": last_status}
