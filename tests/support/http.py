"""A real HTTP server for the suite's tests: it answers with what it was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
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


class QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without a log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextmanager
def serve(app: Callable, *, ssl_context: Any = None) -> Iterator[str]:
    """Run the WSGI ``app`` on a free loopback port, without request logs; its base URL
    (``https`` with ``ssl_context``) while the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler,
                         ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if ssl_context is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
