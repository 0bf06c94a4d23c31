"""Organization-scoped routes: the Stripe Connect payout status and an internal rollup read."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from opsgate.demo.routes.common import demo, error, require_secret
from opsgate.demo.tables import rollups

blueprint = Blueprint("organizations", __name__)
ORGANIZATIONS = frozenset({"org-smoke"})
MAX_LIMIT = 100


@blueprint.get("/api/payouts/status")
def payouts_status():
    """The organization's Stripe Connect account, in Stripe's shape (``payoutsEnabled``...).

    ``connect_not_ready``: the account lost its bank account, payouts are disabled.
    """
    organization = request.args.get("organizationId")
    if not organization:
        return error(400, "organization_required")
    if organization not in ORGANIZATIONS:
        return error(404, "no_such_organization")
    ready = not demo().has("connect_not_ready")
    return jsonify({
        "organizationId": organization,
        "stripeAccountId": "acct_demo0000smoke",
        "chargesEnabled": True,
        "payoutsEnabled": ready,
        "requirements": {"currentlyDue": [] if ready else ["external_account"],
                         "disabledReason": None if ready else "requirements.past_due"},
    })


@blueprint.get("/internal/analytics/rollups")
@require_secret
def organization_rollups():
    """The latest rollups of ``?organizationId=``; 400 ``organization_required`` without it.

    ``org_scope_missing`` is the fail-open bug: without an organization, every one is read.
    """
    organization = request.args.get("organizationId")
    if not organization and not demo().has("org_scope_missing"):
        return error(400, "organization_required", "organizationId is required")
    try:
        limit = min(int(request.args.get("limit", "10")), MAX_LIMIT)
    except ValueError:
        return error(400, "bad_limit", "limit must be an integer")
    with demo().engine.connect() as conn:
        rows = conn.execute(select(rollups.c.bucket_date, rollups.c.events)
                            .order_by(rollups.c.bucket_date.desc()).limit(max(limit, 0)))
        items = [{"bucketDate": row.bucket_date.isoformat(), "events": row.events}
                 for row in rows]
    return jsonify({"organizationId": organization or None, "rollups": items})
