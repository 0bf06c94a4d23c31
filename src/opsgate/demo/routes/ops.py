"""Health, the ops status facts, the ops dashboard and ``/metrics`` (storage: ``storage.py``)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, render_template_string
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opsgate.demo.facts import database_ok, triage
from opsgate.demo.routes.common import demo, error

blueprint = Blueprint("ops", __name__)
SLOW_HEALTH_S = 0.7

DASHBOARD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>opsgate demo: ops dashboard</title></head>
<body><h1>Ops dashboard</h1>
<table>{% for name, value in facts.items() %}
<tr><th>{{ name }}</th><td>{{ value }}</td></tr>{% endfor %}
</table></body></html>
"""


@blueprint.get("/health")
def health():
    """``{"status": "ok", "database": "ok"}``, or 503 with ``database: error``."""
    if demo().has("slow_health"):
        time.sleep(SLOW_HEALTH_S)
    ok = database_ok(demo().health_engine)
    body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "error"}
    return jsonify(body), 200 if ok else 503


@blueprint.get("/api/ops/status")
def status():
    """The triage facts as JSON."""
    return jsonify(triage(demo()))


@blueprint.get("/ops/dashboard")
def dashboard():
    """The triage facts as a page; 503 under ``dashboard_down`` (its backend is gone)."""
    if demo().has("dashboard_down"):
        return error(503, "dashboard_unavailable", "the dashboard's backend does not answer")
    return render_template_string(DASHBOARD, facts=triage(demo()))


@blueprint.get("/metrics")
def metrics():
    """Prometheus exposition of the demo's own registry."""
    return Response(generate_latest(demo().metrics.registry), content_type=CONTENT_TYPE_LATEST)
