"""Jobs: the queue the API fills and the worker drains, and the worker's heartbeat."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from opsgate.demo.database import as_utc
from opsgate.demo.tables import jobs, worker_heartbeats

TERMINAL = frozenset({"succeeded", "failed", "skipped"})
WORKER_ID = "worker-1"


def enqueue(conn: Connection, kind: str, now: datetime) -> int:
    """A new queued job; its id."""
    result = conn.execute(jobs.insert().values(kind=kind, status="queued", created_at=now,
                                               updated_at=now))
    return int(result.inserted_primary_key[0])


def get(conn: Connection, job_id: int) -> dict[str, Any] | None:
    """The job as the API shows it, or None."""
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None:
        return None
    return {"id": row["id"], "kind": row["kind"], "status": row["status"],
            "error": row["error"], "created_at": as_utc(row["created_at"]).isoformat(),
            "updated_at": as_utc(row["updated_at"]).isoformat()}


def claim_next(conn: Connection, now: datetime) -> tuple[int, str] | None:
    """Move the oldest queued job to ``running``; its id and kind."""
    row = conn.execute(select(jobs.c.id, jobs.c.kind).where(jobs.c.status == "queued")
                       .order_by(jobs.c.id).limit(1).with_for_update(skip_locked=True)).first()
    if row is None:
        return None
    conn.execute(jobs.update().where(jobs.c.id == row.id)
                 .values(status="running", updated_at=now))
    return int(row.id), str(row.kind)


def finish(conn: Connection, job_id: int, status: str, now: datetime,
           error: str | None = None) -> None:
    """Record a job's end."""
    conn.execute(jobs.update().where(jobs.c.id == job_id)
                 .values(status=status, error=error, updated_at=now))


def depth(conn: Connection) -> dict[str, int]:
    """``{"queued": n, "running": m}``."""
    rows = conn.execute(select(jobs.c.status, func.count()).where(
        jobs.c.status.in_(("queued", "running"))).group_by(jobs.c.status)).all()
    counts = {"queued": 0, "running": 0}
    counts.update({status: int(n) for status, n in rows})
    return counts


def beat(conn: Connection, now: datetime) -> None:
    """The worker says it is alive."""
    updated = conn.execute(worker_heartbeats.update()
                           .where(worker_heartbeats.c.worker_id == WORKER_ID)
                           .values(beat_at=now)).rowcount
    if not updated:
        conn.execute(worker_heartbeats.insert().values(worker_id=WORKER_ID, started_at=now,
                                                       beat_at=now))


def last_beat(conn: Connection) -> datetime | None:
    """The freshest heartbeat of any worker."""
    value = conn.scalar(select(func.max(worker_heartbeats.c.beat_at)))
    return as_utc(value) if value is not None else None
