"""``POST /webhooks/checkout``: the payment provider's checkout webhook (idempotent by id)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from opsgate.demo import outbox
from opsgate.demo.database import utcnow
from opsgate.demo.routes.common import demo, error, json_body
from opsgate.demo.tables import webhook_events

blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/checkout")
def checkout():
    """Record and process the event once; with a wrong runtime secret every one fails."""
    body = json_body()
    event_id, kind = body.get("id"), body.get("type", "checkout.session.completed")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        return error(400, "bad_event", 'give {"id": "evt_...", "type": "..."}')
    now = utcnow()
    with demo().engine.begin() as conn:
        if demo().has("webhook_failures"):
            conn.execute(webhook_events.insert().values(
                event_id=event_id, type=kind, status="failed", error="signature_mismatch",
                received_at=now))
            return jsonify({"status": "failed", "error": "signature_mismatch"}), 400
        seen = conn.scalar(select(webhook_events.c.id).where(
            webhook_events.c.event_id == event_id, webhook_events.c.status == "processed"))
        if seen is None:
            conn.execute(webhook_events.insert().values(
                event_id=event_id, type=kind, status="processed", received_at=now))
            outbox.add_event(conn, "checkout.completed", {"webhook": event_id}, now)
    return jsonify({"status": "processed", "eventId": event_id, "duplicate": seen is not None})
