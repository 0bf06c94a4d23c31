"""``POST /api/pos/authorize``: the POS canary (allowlist mode, the Meta-Lav runbook)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from opsgate.demo.context import CANARY_ALLOWLIST
from opsgate.demo.database import utcnow
from opsgate.demo.routes.common import demo, error, json_body
from opsgate.demo.tables import pos_authorizations

blueprint = Blueprint("pos", __name__)


@blueprint.post("/api/pos/authorize")
def authorize():
    """400 without a tenant (no-op); 403 ``canary_not_allowed`` outside the allowlist."""
    tenant = json_body().get("tenant")
    if not isinstance(tenant, str) or not tenant.strip():
        return error(400, "tenant_required", "no tenant: nothing was done")
    allowed = tenant in CANARY_ALLOWLIST or demo().has("canary_leak")
    with demo().engine.begin() as conn:
        conn.execute(pos_authorizations.insert().values(tenant=tenant, authorized=allowed,
                                                        created_at=utcnow()))
    if not allowed:
        return error(403, "canary_not_allowed", f"tenant {tenant} is not in the POS canary")
    return jsonify({"authorized": True, "tenant": tenant})
