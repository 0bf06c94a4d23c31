"""Internal endpoints behind ``X-Ops-Secret``: the DLQ, replay, and the cron status."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from opsgate.demo import outbox
from opsgate.demo.context import ROLLUP_INTERVAL_S
from opsgate.demo.database import utcnow
from opsgate.demo.facts import cron_status
from opsgate.demo.routes.common import demo, error, json_body, require_secret

blueprint = Blueprint("internal", __name__)
MAX_LIMIT = 500


@blueprint.get("/internal/outbox/dlq")
@require_secret
def dead_letter_queue():
    """``{"count": N, "items": [...]}``: dead letters not replayed yet (``?limit=``)."""
    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        return error(400, "bad_limit", "limit must be an integer")
    if not 0 <= limit <= MAX_LIMIT:
        return error(400, "bad_limit", f"limit must be between 0 and {MAX_LIMIT}")
    with demo().engine.connect() as conn:
        return jsonify(outbox.dlq(conn, limit))


@blueprint.post("/internal/outbox/replay")
@require_secret
def replay():
    """Replay one event by ``eventId``; replaying it again has no further effect."""
    event_id = json_body().get("eventId")
    if not isinstance(event_id, str) or not event_id:
        return error(400, "event_id_required", 'give {"eventId": "evt_..."}')
    try:
        with demo().engine.begin() as conn:
            result = outbox.replay(conn, event_id, utcnow(),
                                   dedupe=not demo().has("replay_not_idempotent"))
    except outbox.EventNotFound:
        return error(404, "no_such_event")
    return jsonify(result)


@blueprint.get("/internal/cron/status")
@require_secret
def crons():
    """Each scheduled job's last success and its age."""
    return jsonify({"jobs": [cron_status(demo(), "analytics-rollup", ROLLUP_INTERVAL_S)]})
