"""``POST /api/payments`` with an ``Idempotency-Key`` header."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from opsgate.demo import payments
from opsgate.demo.routes.common import demo, error

blueprint = Blueprint("payments", __name__)
KEY_HEADER = "Idempotency-Key"


@blueprint.post("/api/payments")
def create():
    """Charge once per key: replay 200, other body 422, in flight 409 (see ``payments``)."""
    key = request.headers.get(KEY_HEADER) or None
    if key is not None and len(key) > 80:
        return error(400, "bad_idempotency_key", "at most 80 characters")
    try:
        answer = payments.pay(demo().engine, key, request.get_json(silent=True),
                              honour_keys=not demo().has("idempotency_broken"))
    except payments.InvalidPayment as exc:
        return error(400, "invalid_payment", str(exc))
    if answer.status == 409:
        demo().metrics.idempotency_conflicts.inc()
    response = jsonify(answer.body)
    response.status_code = answer.status
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response
