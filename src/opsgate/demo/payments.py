"""Payments behind an ``Idempotency-Key`` (the V11 rules).

Same key and same body: the stored response again (``replayed``). Same key, other body: 422.
A key whose first request is still running: 409. The key is claimed by inserting its row (the
primary key makes the claim atomic on both databases), the work runs outside any transaction
(``delay_ms`` makes it slow on purpose), and the response is stored when it completes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from opsgate.demo.database import as_utc, utcnow
from opsgate.demo.tables import idempotency_keys, payments

LOCK_SECONDS = 30
MAX_DELAY_MS = 10_000


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the payments endpoint."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


class InvalidPayment(ValueError):
    """The request body is not a payment."""


def request_hash(body: dict[str, Any]) -> str:
    """The fingerprint of a request body (``delay_ms`` is a test knob, not part of it)."""
    canonical = {k: v for k, v in body.items() if k != "delay_ms"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def validate(body: Any) -> dict[str, Any]:
    """The body as a payment request; InvalidPayment otherwise."""
    if not isinstance(body, dict):
        raise InvalidPayment("the body must be a JSON object")
    amount = body.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidPayment("amount must be a positive integer number of cents")
    return body


def insert_payment(conn: Connection, amount: int, key: str | None, now: datetime, *,
                   payment_id: str | None = None, provider_ref: str | None = None) -> dict:
    """Charge at the provider (simulated) and record the payment."""
    row = {"id": payment_id or f"pay_{secrets.token_hex(6)}",
           "provider_ref": provider_ref or f"ch_{secrets.token_hex(8)}",
           "idempotency_key": key, "amount": amount, "status": "captured", "created_at": now}
    conn.execute(payments.insert().values(**row))
    return {"id": row["id"], "amount": amount, "status": "captured",
            "provider_ref": row["provider_ref"]}


def pay(engine: Engine, key: str | None, body: dict[str, Any], *, honour_keys: bool = True,
        payment_id: str | None = None) -> Answer:
    """Handle one payment request; ``honour_keys=False`` is the ``idempotency_broken`` fault."""
    body = validate(body)
    if key is None or not honour_keys:
        return _charge(engine, key, body, payment_id)
    digest = request_hash(body)
    claimed = _claim(engine, key, digest)
    if claimed is not None:
        return claimed
    try:
        answer = _charge(engine, key, body, payment_id)
    except BaseException:
        with engine.begin() as conn:  # let a retry take the key over
            conn.execute(idempotency_keys.delete().where(idempotency_keys.c.key == key))
        raise
    with engine.begin() as conn:
        conn.execute(idempotency_keys.update().where(idempotency_keys.c.key == key).values(
            status="completed", response_status=answer.status,
            response_body=json.dumps(answer.body), locked_until=None))
    return answer


def _charge(engine: Engine, key: str | None, body: dict[str, Any],
            payment_id: str | None) -> Answer:
    delay = min(int(body.get("delay_ms") or 0), MAX_DELAY_MS)
    if delay > 0:
        time.sleep(delay / 1000)
    with engine.begin() as conn:
        return Answer(200, insert_payment(conn, body["amount"], key, utcnow(),
                                          payment_id=payment_id))


def _claim(engine: Engine, key: str, digest: str) -> Answer | None:
    """None when this request now owns the key; otherwise the answer to give."""
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(idempotency_keys.insert().values(
                key=key, request_hash=digest, status="in_progress",
                locked_until=now + timedelta(seconds=LOCK_SECONDS), created_at=now))
        return None
    except IntegrityError:
        pass
    with engine.begin() as conn:
        row = conn.execute(select(idempotency_keys).where(idempotency_keys.c.key == key)
                           .with_for_update()).mappings().one()
        if row["request_hash"] != digest:
            return Answer(422, {"error": "idempotency_key_reused",
                                "message": "this Idempotency-Key was used with another body"})
        if row["status"] == "completed":
            return Answer(row["response_status"], json.loads(row["response_body"]),
                          replayed=True)
        if row["locked_until"] is not None and as_utc(row["locked_until"]) > now:
            return Answer(409, {"error": "idempotency_key_in_flight",
                                "message": "a request with this Idempotency-Key is running"})
        conn.execute(idempotency_keys.update().where(idempotency_keys.c.key == key).values(
            locked_until=now + timedelta(seconds=LOCK_SECONDS)))  # its owner died: take over
    return None
