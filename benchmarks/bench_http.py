"""Loopback HTTP servers for the benchmark: a slow JSON service and a recording proxy.

``SlowService`` answers ``/slow`` after a fixed delay and ``/value`` at once, both with a small
JSON body, serving every connection in its own thread (HTTP/1.1 keep-alive, a deep listen
backlog so 16 or more simultaneous connects are never dropped). It counts requests and the most
it ever had in flight, which shows the concurrency a client really used.

``RecordingProxy`` forwards GET requests to an upstream (Prometheus) and counts them by path,
so the benchmark sees exactly which queries opsgate sent.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench_common import HOST


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in one write with TCP_NODELAY: a second small write would wait
    # for the client's delayed ACK (40 ms on Linux) and add that to every request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the benchmark's terminal."""

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n")
        self.wfile.write(head.encode("latin-1") + body)


class _Running:
    """A server in a daemon thread; ``stop()`` shuts it down and closes its socket."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.server = _Server((HOST, 0), handler)
        self.server.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_port}"

    def start(self) -> _Running:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- the slow service
class _SlowHandler(_Quiet):
    def do_GET(self) -> None:
        service: SlowService = self.server.owner  # type: ignore[attr-defined]
        service.entered()
        try:
            if self.path.startswith("/slow"):
                time.sleep(service.delay)
            body = json.dumps({"ok": True, "count": 3, "dlq": {"count": 3}}).encode()
            self.send_body(200, body, "application/json")
        finally:
            service.left()


class SlowService(_Running):
    """``/slow`` answers after ``delay`` seconds, ``/value`` at once."""

    def __init__(self, delay: float):
        super().__init__(_SlowHandler)
        self.delay = delay
        self._lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def entered(self) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def left(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset(self) -> None:
        with self._lock:
            self.requests = self.max_in_flight = 0


# ---------------------------------------------------------------- the recording proxy
class _ProxyHandler(_Quiet):
    def do_GET(self) -> None:
        proxy: RecordingProxy = self.server.owner  # type: ignore[attr-defined]
        proxy.record(self.path.split("?", 1)[0])
        try:
            with urllib.request.urlopen(proxy.upstream + self.path, timeout=60) as answer:
                status, body = answer.status, answer.read()
                content_type = answer.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
            content_type = exc.headers.get("Content-Type", "application/json")
        self.send_body(status, body, content_type)


class RecordingProxy(_Running):
    """Forwards GETs to ``upstream`` and counts them by path."""

    def __init__(self, upstream: str):
        super().__init__(_ProxyHandler)
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self.paths: Counter[str] = Counter()

    def record(self, path: str) -> None:
        with self._lock:
            self.paths[path] += 1
