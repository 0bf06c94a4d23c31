"""``POST /webhooks/checkout``: the payment provider's checkout webhook (idempotent by id).

Deliveries are signed Stripe-style: ``Stripe-Signature: t=<unix>,v1=<hex>``, the HMAC-SHA256
with the webhook secret (the demo's secret) of ``<t>.<raw body>``, at most 5 minutes old. A
delivery that fails verification is recorded as failed (``signature_mismatch``) and answered
400; the ``webhook_failures`` fault is a wrong secret at runtime, so every delivery fails.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from opsgate.demo import outbox
from opsgate.demo.database import utcnow
from opsgate.demo.routes.common import demo, error, json_body
from opsgate.demo.tables import webhook_events

blueprint = Blueprint("webhooks", __name__)
SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_S = 300


@blueprint.post("/webhooks/checkout")
def checkout():
    """Verify, then record and process the event once."""
    body = json_body()
    event_id, kind = body.get("id"), body.get("type", "checkout.session.completed")
    if not isinstance(event_id, str) or not event_id or not isinstance(kind, str):
        return error(400, "bad_event", 'give {"id": "evt_...", "type": "..."}')
    now = utcnow()
    with demo().engine.begin() as conn:
        if not verified(request.headers.get(SIGNATURE_HEADER, ""), request.get_data(),
                        webhook_secret()):
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


def webhook_secret() -> str:
    """The secret deliveries are checked with (a stale one under ``webhook_failures``)."""
    return demo().secret + ("-rotated" if demo().has("webhook_failures") else "")


def verified(header: str, payload: bytes, secret: str, now: float | None = None) -> bool:
    """Whether ``header`` holds a fresh ``v1`` signature of ``payload`` made with ``secret``."""
    parts = [item.partition("=") for item in header.split(",")]
    stamps = [value for key, _, value in parts if key.strip() == "t"]
    signatures = [value.strip() for key, _, value in parts if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not signatures:
        return False
    stamp = stamps[0].strip()
    if abs((time.time() if now is None else now) - int(stamp)) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + payload,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, given) for given in signatures)
