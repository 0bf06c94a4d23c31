"""Run the demo: reset and seed its database, serve the app on loopback, start its workers.

``DemoServer`` is a context manager; ``stop()`` ends the HTTP server, every worker thread,
the ``stuck_lock`` session and the database pools, and is safe to call twice.
"""

from __future__ import annotations

import errno
import logging
import secrets
import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, make_server

from opsgate.demo.app import create_app
from opsgate.demo.context import DemoContext
from opsgate.demo.database import (
    DEFAULT_URL,
    backend,
    open_engine,
    reset_schema,
    unreachable_url,
    utcnow,
)
from opsgate.demo.faults import validate
from opsgate.demo.metrics import DemoMetrics
from opsgate.demo.seed import seed
from opsgate.demo.workers import Loops, StuckLock, start_loops

HOST = "127.0.0.1"
DEFAULT_PORT = 18080


class DemoServer:
    """The demo target on ``http://127.0.0.1:PORT`` (port 0: any free port)."""

    def __init__(self, *, port: int = DEFAULT_PORT, db_url: str = DEFAULT_URL,
                 faults: frozenset[str] | set[str] | tuple[str, ...] = (),
                 secret: str | None = None, quiet: bool = True):
        self.requested_port = port
        self.db_url = db_url
        self.backend = backend(db_url)
        self.faults = validate(faults, self.backend)
        self.secret = secret or secrets.token_urlsafe(24)
        self.quiet = quiet
        self.context: DemoContext | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._loops: Loops | None = None
        self._stuck: StuckLock | None = None

    @property
    def port(self) -> int:
        """The port it listens on (after ``start``)."""
        assert self._server is not None, "the demo is not started"
        return self._server.server_port

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> DemoServer:
        """Reset and seed the database, bind the port, start serving and the workers."""
        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        engine = open_engine(self.db_url)
        try:
            reset_schema(engine)
            started = utcnow()
            seed(engine, self.faults, started)
        except BaseException:
            engine.dispose()
            raise
        health = open_engine(unreachable_url(self.db_url)) if "db_error" in self.faults \
            else engine
        metrics = DemoMetrics()
        metrics.watch_database(engine)
        self.context = DemoContext(engine, health, self.faults, self.secret, metrics, started,
                                   self.backend)
        try:
            self._serve()
            if "stuck_lock" in self.faults:
                self._stuck = StuckLock(self.context)
                self._stuck.start()
            self._loops = start_loops(self.context, self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def _serve(self) -> None:
        assert self.context is not None
        try:
            self._server = make_server(HOST, self.requested_port, create_app(self.context),
                                       threaded=True)
        except SystemExit as exc:  # werkzeug prints and exits when the port is taken
            raise OSError(errno.EADDRINUSE, f"port {self.requested_port} is in use") from exc
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="opsgate-demo-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, stop the workers, release the databases. Idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._loops is not None:
            self._loops.stop()
            self._loops = None
        if self._stuck is not None:
            self._stuck.stop()
            self._stuck = None
        if self.context is not None:
            self.context.stopping.set()
            self.context.engine.dispose()
            self.context.health_engine.dispose()
            self.context = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
