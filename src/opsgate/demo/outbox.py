"""The outbox: events to publish, dead letters, replay, and the read model they feed.

Replay is idempotent by its dedupe key (the event id): replaying an event whose effect is
already in the read model changes nothing. The ``replay_not_idempotent`` fault drops that check.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from opsgate.demo.database import as_utc
from opsgate.demo.tables import dead_letters, outbox, read_model_events


class EventNotFound(LookupError):
    """No outbox event has that id."""


def add_event(conn: Connection, topic: str, payload: dict[str, Any], now: datetime,
              *, event_id: str | None = None, status: str = "pending") -> str:
    """Append an event to the outbox; its id."""
    event_id = event_id or f"evt_{secrets.token_hex(6)}"
    conn.execute(outbox.insert().values(
        event_id=event_id, topic=topic, payload=json.dumps(payload, sort_keys=True),
        status=status, attempts=0, created_at=now,
        published_at=now if status == "published" else None))
    return event_id


def dead_letter(conn: Connection, event_id: str, reason: str, provider: str,
                now: datetime) -> None:
    """Move an event to the DLQ (the outbox row stays, marked ``dead``)."""
    conn.execute(outbox.update().where(outbox.c.event_id == event_id)
                 .values(status="dead", attempts=outbox.c.attempts + 5))
    conn.execute(dead_letters.insert().values(event_id=event_id, reason=reason,
                                              provider=provider, created_at=now))


def materialize(conn: Connection, event_id: str, now: datetime) -> None:
    """Apply an event's effect to the read model."""
    conn.execute(read_model_events.insert().values(event_id=event_id, materialized_at=now))


def effects(conn: Connection, event_id: str) -> int:
    """How many times the event's effect is in the read model."""
    return conn.scalar(select(func.count()).select_from(read_model_events)
                       .where(read_model_events.c.event_id == event_id)) or 0


def replay(conn: Connection, event_id: str, now: datetime, *, dedupe: bool = True) -> dict:
    """Publish a dead-lettered (or any) event again; with ``dedupe`` its effect lands once."""
    row = conn.execute(select(outbox.c.id).where(outbox.c.event_id == event_id)
                       .with_for_update()).first()
    if row is None:
        raise EventNotFound(event_id)
    applied = not (dedupe and effects(conn, event_id) > 0)
    if applied:
        materialize(conn, event_id, now)
    conn.execute(outbox.update().where(outbox.c.event_id == event_id)
                 .values(status="published", published_at=now))
    conn.execute(dead_letters.update()
                 .where(dead_letters.c.event_id == event_id, dead_letters.c.replayed_at.is_(None))
                 .values(replayed_at=now))
    return {"eventId": event_id, "replayed": True, "applied": applied,
            "effects": effects(conn, event_id)}


def publish_pending(conn: Connection, now: datetime, *, materialized: bool = True,
                    limit: int = 200) -> int:
    """The relay: publish pending events (and feed the read model); how many."""
    ids = list(conn.scalars(select(outbox.c.event_id).where(outbox.c.status == "pending")
                            .order_by(outbox.c.id).limit(limit)))
    if not ids:
        return 0
    conn.execute(outbox.update().where(outbox.c.event_id.in_(ids))
                 .values(status="published", published_at=now))
    if materialized:
        conn.execute(read_model_events.insert(),
                     [{"event_id": event_id, "materialized_at": now} for event_id in ids])
    return len(ids)


def dlq(conn: Connection, limit: int) -> dict:
    """The DLQ as the internal endpoint shows it: dead letters not replayed yet."""
    waiting = dead_letters.c.replayed_at.is_(None)
    count = conn.scalar(select(func.count()).select_from(dead_letters).where(waiting)) or 0
    rows = conn.execute(select(dead_letters).where(waiting)
                        .order_by(dead_letters.c.id.desc()).limit(limit)).mappings()
    items = [{"id": r["id"], "eventId": r["event_id"], "reason": r["reason"],
              "provider": r["provider"], "deadLetteredAt": as_utc(r["created_at"]).isoformat()}
             for r in rows]
    return {"count": count, "items": items}
