"""A real HTTP server for the suite's tests: it answers with what it was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@pytest.fixture
def echo_server():
    """A real HTTP server that answers with the request's headers as JSON."""

    @Request.application
    def app(request: Request) -> Response:
        body = json.dumps({"path": request.path, "headers": dict(request.headers),
                           "count": int(request.args.get("count", 0))})
        return Response(body, status=int(request.args.get("status", 200)),
                        content_type="application/json")

    with serve(app) as url:
        yield url


@contextmanager
def serve(app: Callable) -> Iterator[str]:
    """Run the WSGI ``app`` on a free loopback port; its base URL while the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
