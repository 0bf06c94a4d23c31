"""The demo's Flask application: its routes, and request metrics for every route."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from opsgate.demo.context import DemoContext
from opsgate.demo.metrics import DemoMetrics
from opsgate.demo.routes import BLUEPRINTS


def create_app(context: DemoContext) -> Flask:
    """The application serving ``context``."""
    app = Flask("opsgate.demo")
    app.config["DEMO"] = context
    app.json.sort_keys = False  # type: ignore[attr-defined]
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    _instrument(app, context.metrics)
    return app


def _instrument(app: Flask, metrics: DemoMetrics) -> None:
    """Observe every request's duration and count it by route and status (not /metrics)."""

    @app.before_request
    def _start() -> None:
        g.opsgate_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        if route != "/metrics":
            elapsed = time.perf_counter() - g.get("opsgate_started", time.perf_counter())
            metrics.request_seconds.labels(request.method, route).observe(elapsed)
            metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response
