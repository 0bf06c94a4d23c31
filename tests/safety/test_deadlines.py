"""Guarantee 6: every check has a deadline, and the run has one, even when a call is blocked in C.

Each test runs ``pytest checks --env FILE`` through the plugin in a subprocess against a target
built to hang on loopback: a listener that accepts and never answers, one whose backlog is full,
an HTTP server that drips one byte per second forever (in the headers or in the body), a
PostgreSQL query waiting on a lock a second connection holds, a PostgreSQL connection that goes
silent mid-query behind a small TCP proxy, and a Prometheus that never answers. Every case is
timed twice: from the evidence record (``started_at`` / ``finished_at``) and from the wall clock,
and the process must end promptly after writing evidence.json (a probe thread stuck in C must
not keep it alive). PostgreSQL cases then check ``pg_stat_activity``: no ``opsgate/...`` backend
may be left in the test's database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from werkzeug.wrappers import Request, Response

from opsgate.evidence import verify
from opsgate.scheduler import GRACE
from tests.support.http import serve

REPO = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist",
         "-p", "no:anyio")
#: The scheduler notices a passed deadline at its next poll (every 0.25 s); timestamps are
#: taken in a busy two-core machine. A check may end this much after timeout + GRACE.
SLACK = 0.5
#: From evidence.json written to the process gone: unconfigure, renames, interpreter exit.
EXIT_LAG = 3.0
#: Collection, preflight and probe start-up between the run's start and its first check.
PREFLIGHT = 2.0
#: Python and pytest start-up before the run starts (about 1 s; much more on a loaded machine).
STARTUP = 15.0
#: A run still going after this long is stuck for good; it is killed and the test fails.
RUN_LIMIT = 30.0
MARKER = "opsgate_blackhole_marker"


# ---------------------------------------------------------------- running the gate
@dataclass
class Gate:
    """One run of the catalog: pytest's result, its evidence.json and when it ended."""

    result: pytest.RunResult
    document: dict[str, Any] | None
    folder: Path | None
    wall: float
    ended: datetime

    def check(self, ident: str) -> dict[str, Any]:
        """The evidence record of check ``ident``."""
        assert self.document is not None, self.explain()
        found = [c for c in self.document["checks"] if c["id"] == ident]
        assert len(found) == 1, f"{ident} not in evidence:\n{self.explain()}"
        return found[0]

    def exit_lag(self) -> float:
        """Seconds between evidence.json's ``finished_at`` and the process being gone."""
        assert self.document is not None, self.explain()
        return (self.ended - parse(self.document["finished_at"])).total_seconds()

    def explain(self) -> str:
        return (f"exit {self.result.ret} after {self.wall:.2f}s\n"
                f"{self.result.stdout.str()[-4000:]}\n{self.result.stderr.str()[-2000:]}")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds(record: dict[str, Any]) -> float:
    """How long the check took, from its evidence record."""
    return (parse(record["finished_at"]) - parse(record["started_at"])).total_seconds()


def run_gate(pytester: pytest.Pytester, targets: dict[str, Any], checks: list[dict[str, Any]],
             *args: str) -> Gate:
    """Run ``checks`` against ``targets`` through the plugin in a subprocess."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    path = pytester.path / "deadlines.yaml"
    path.write_text(yaml.safe_dump({"name": "dl", "targets": targets, "checks": checks},
                                   sort_keys=False))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    begin = time.monotonic()
    try:
        result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir",
                                               str(out), *QUIET, *args, timeout=RUN_LIMIT)
    except pytester.TimeoutExpired:
        raise AssertionError(
            f"the run was still going after {RUN_LIMIT:g}s and was killed: a check waited "
            "past its deadline + grace, or the process waited for a stuck thread") from None
    wall = time.monotonic() - begin
    ended = datetime.now(UTC)
    runs = list(out.iterdir()) if out.is_dir() else []
    folder = runs[0] if len(runs) == 1 else None
    evidence = folder / "evidence.json" if folder else None
    document = json.loads(evidence.read_text()) if evidence and evidence.is_file() else None
    return Gate(result, document, folder, wall, ended)


def http_check(ident: str, path: str = "/", **options: Any) -> dict[str, Any]:
    return {"id": ident, "title": f"http {ident}", "kind": "http",
            "request": {"path": path}, "expect": {"status": "== 200"}, **options}


def assert_timed_out(gate: Gate, ident: str, timeout: float) -> float:
    """``ident`` timed out: an error after ``timeout`` and within ``timeout`` + GRACE.

    Both bounds are read from its evidence record, which must say when the probe started and
    ended, not when pytest got round to waiting for it (probes start together up front).
    """
    record = gate.check(ident)
    assert record["outcome"] == "error", record
    assert record["reason"] == "timeout", record
    took = seconds(record)
    assert took >= timeout - 0.2, (
        f"{ident}'s evidence says it took {took:.2f}s, less than its {timeout}s timeout: "
        f"started_at is not when its probe started:\n{record}")
    assert took <= timeout + GRACE + SLACK, (
        f"{ident} took {took:.2f}s, more than its timeout {timeout}s + {GRACE}s grace:\n"
        f"{record['message']}")
    return took


def assert_prompt(gate: Gate, bound: float) -> None:
    """The process ended soon after writing evidence.json, ``bound`` seconds into the run.

    Measured from the run's own start (``started_at``, taken at configure) to the process
    being gone, so the interpreter's start-up, which a loaded machine stretches, is left out.
    """
    assert gate.document is not None, gate.explain()
    assert verify(gate.document)
    lag = gate.exit_lag()
    alive = (gate.ended - parse(gate.document["started_at"])).total_seconds()
    print(f"wall {gate.wall:.2f}s, run {alive:.2f}s, exit {lag:.2f}s after evidence.json; "
          + "; ".join(f"{c['id']} {c['outcome']} in {seconds(c):.2f}s: {c['message'][:150]}"
                      for c in gate.document["checks"]))
    assert lag < EXIT_LAG, f"the process lived {lag:.2f}s after evidence.json:\n{gate.explain()}"
    assert alive < PREFLIGHT + bound + EXIT_LAG, (
        f"the run lived {alive:.2f}s for checks bounded by {bound:g}s:\n{gate.explain()}")
    assert gate.wall < STARTUP + PREFLIGHT + bound + EXIT_LAG, (
        f"the process took {gate.wall:.2f}s:\n{gate.explain()}")


def assert_quick_reported(gate: Gate, ident: str = "OK") -> None:
    record = gate.check(ident)
    assert record["outcome"] == "passed", record
    assert seconds(record) < 1.0


# ---------------------------------------------------------------- hanging targets
class SilentListener:
    """A loopback TCP listener that never answers.

    ``accept=True``: connections are accepted and held, never read from or written to: the
    request disappears. ``accept=False``: the backlog is filled and never drained, so a new
    connection attempt gets no SYN-ACK at all (the kernel drops it).
    """

    def __init__(self, *, accept: bool = True):
        self.server = socket.create_server(("127.0.0.1", 0), backlog=64 if accept else 0)
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if accept:
            self.server.settimeout(0.1)
            self._thread = threading.Thread(target=self._accept, daemon=True)
            self._thread.start()
        else:
            self._fill_backlog()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def _fill_backlog(self) -> None:
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.3)
            try:
                filler.connect(("127.0.0.1", self.port))
            except OSError:
                filler.close()
                return
            self.held.append(filler)
        raise AssertionError("the listener's backlog never filled up")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        for sock in [*self.held, self.server]:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def silent_listener(*, accept: bool = True) -> Iterator[SilentListener]:
    listener = SilentListener(accept=accept)
    try:
        yield listener
    finally:
        listener.close()


class DripServer:
    """An HTTP server that sends one byte per second forever.

    ``where="headers"``: the status line and headers themselves drip (the response never
    starts); ``where="body"``: the headers arrive at once, then the body drips.
    """

    def __init__(self, where: str):
        self.where = where
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _drip(self, conn: socket.socket) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        try:
            conn.recv(65536)
            if self.where == "body":
                conn.sendall(head + b"Content-Length: 1000000000\r\n\r\n")
                stream = itertools.repeat(b"x")
            else:
                stream = itertools.chain((bytes([b]) for b in head + b"X-Drip: "),
                                         itertools.repeat(b"a"))
            for byte in stream:
                conn.sendall(byte)
                if self._stop.wait(1.0):
                    return
        except OSError:  # the client went away: the drip ends
            return

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        for sock in [*self.connections, self.server]:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def drip_server(where: str) -> Iterator[DripServer]:
    server = DripServer(where)
    try:
        yield server
    finally:
        server.close()


class BlackholeProxy:
    """A TCP proxy on loopback in front of PostgreSQL that goes silent mid-query.

    Bytes are forwarded both ways (start-up, authentication, opsgate's own preflight queries,
    cancel requests) until a client sends a message containing ``marker``: from then on that
    connection is a black hole. Nothing more is forwarded in either direction, nothing is
    closed, and TCP still acknowledges everything, exactly like a peer behind a dead firewall
    state: PostgreSQL's own timeouts and TCP keepalives cannot notice it.
    """

    def __init__(self, upstream: tuple[str, int], marker: bytes):
        self.upstream, self.marker = upstream, marker
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self.blackholed = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.server, selectors.EVENT_READ, None)
        self._sockets: list[socket.socket] = [self.server]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._pump(key.fileobj, key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self.server.accept()
        server = socket.create_connection(self.upstream, timeout=3)
        pair = {"client": client, "server": server, "dark": False}
        for sock, side in ((client, "client"), (server, "server")):
            sock.setblocking(True)
            self._sockets.append(sock)
            self._selector.register(sock, selectors.EVENT_READ, (pair, side))

    def _pump(self, sock: socket.socket, data: tuple[dict[str, Any], str]) -> None:
        pair, side = data
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if side == "client" and self.marker in chunk and not pair["dark"]:
            pair["dark"] = True
            self.blackholed += 1
        if not chunk:
            self._selector.unregister(sock)
            if not pair["dark"]:  # an ordinary end: close both sides like any proxy
                other = pair["server" if side == "client" else "client"]
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(other)
                for end in (sock, other):
                    with contextlib.suppress(OSError):
                        end.close()
            return
        if pair["dark"]:
            return  # swallowed: the peer never hears of it
        other = pair["server" if side == "client" else "client"]
        with contextlib.suppress(OSError):
            other.sendall(chunk)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._selector.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def blackhole_proxy(marker: str = MARKER) -> Iterator[BlackholeProxy]:
    proxy = BlackholeProxy(("127.0.0.1", 5432), marker.encode())
    try:
        yield proxy
    finally:
        proxy.close()


# ---------------------------------------------------------------- PostgreSQL helpers
def opsgate_backends(admin: psycopg.Connection, database: str) -> list[tuple[Any, ...]]:
    """opsgate's sessions still open in ``database``."""
    return admin.execute(
        "select pid, application_name, state, left(query, 80) from pg_stat_activity "
        "where datname = %s and application_name like 'opsgate/%%'", (database,)).fetchall()


def assert_no_backend_left(pg_database: Any, within: float = 5.0) -> float:
    """No opsgate session is left in the test's database within ``within`` seconds."""
    begin = time.monotonic()
    with pg_database.server.connect() as admin:
        while True:
            left = opsgate_backends(admin, pg_database.name)
            if not left:
                return time.monotonic() - begin
            if time.monotonic() - begin > within:
                raise AssertionError(f"opsgate sessions left behind after {within}s: {left}")
            time.sleep(0.2)


# ---------------------------------------------------------------- the checks that are not stuck
@pytest.fixture
def ok_server() -> Iterator[str]:
    """A real HTTP server that answers at once: the run's checks that are not stuck."""

    @Request.application
    def app(request: Request) -> Response:
        return Response(json.dumps({"count": 3}), content_type="application/json")

    with serve(app) as url:
        yield url


# ---------------------------------------------------------------- (a) black-holed HTTP
@pytest.mark.parametrize("accept", [True, False], ids=["accepts-never-answers", "backlog-full"])
def test_black_holed_http_ends_as_error_within_its_timeout(pytester, ok_server, accept):
    with silent_listener(accept=accept) as hole:
        gate = run_gate(pytester, {"http": {"hole": {"base_url": hole.url, "timeout": "2s"},
                                            "ok": {"base_url": ok_server}}},
                        [http_check("HOLE", target="hole"), http_check("OK", target="ok")])
        if accept:
            assert hole.held, "the black hole never saw the request"
    assert gate.result.ret == 1, gate.explain()
    assert_timed_out(gate, "HOLE", 2.0)
    assert_quick_reported(gate)
    assert gate.document["verdict"] == "BLOCKED"
    assert gate.document["blocking"] == ["dl:HOLE"]
    assert_prompt(gate, 2.0 + GRACE)


# ---------------------------------------------------------------- (b) slow drip
@pytest.mark.parametrize("where", ["headers", "body"])
def test_slow_drip_cannot_stretch_the_total_deadline(pytester, ok_server, where):
    with drip_server(where) as drip:
        gate = run_gate(pytester, {"http": {"drip": {"base_url": drip.url, "timeout": "2s"},
                                            "ok": {"base_url": ok_server}}},
                        [http_check("DRIP", target="drip"), http_check("OK", target="ok")])
    assert gate.result.ret == 1, gate.explain()
    assert_timed_out(gate, "DRIP", 2.0)
    assert_quick_reported(gate)
    assert_prompt(gate, 2.0 + GRACE)


# ---------------------------------------------------------------- (c) lock wait
def test_query_waiting_on_a_lock_ends_with_the_lock_timeout(pytester, pg_database, pg_admin,
                                                           ok_server):
    pg_admin.execute("create table items (id integer)")
    url = pg_database.url
    checks = [
        {"id": "LOCK", "title": "waits on a lock", "kind": "sql", "database": "main",
         "scalar": "select count(*) from items", "expect": ">= 0", "timeout": "5s"},
        # lock and statement timeouts longer than the check's: the watchdog must cancel it
        {"id": "LOCK_LONG", "title": "waits past its deadline", "kind": "sql",
         "database": "patient", "scalar": "select count(*) from items", "expect": ">= 0",
         "timeout": "2s"},
        http_check("OK", target="ok"),
    ]
    targets = {"databases": {"main": {"url": url, "lock_timeout": "1s"},
                             "patient": {"url": url, "lock_timeout": "30s",
                                         "statement_timeout": "30s"}},
               "http": {"ok": {"base_url": ok_server}}}
    with pg_admin.transaction():
        pg_admin.execute("lock table items in access exclusive mode")
        gate = run_gate(pytester, targets, checks)
        still_held = pg_admin.execute(
            "select count(*) from pg_locks where relation = 'items'::regclass "
            "and mode = 'AccessExclusiveLock' and granted").fetchone()[0]
    assert still_held == 1, "the lock was released before the run ended: the test proves nothing"
    assert gate.result.ret == 1, gate.explain()
    lock = gate.check("LOCK")
    assert_timed_out(gate, "LOCK", 1.0)  # the lock timeout, well before the check's 5 s
    assert "lock timeout" in lock["message"], lock
    long = gate.check("LOCK_LONG")
    assert_timed_out(gate, "LOCK_LONG", 2.0)
    assert "cancelled at its deadline" in long["message"], long
    assert_quick_reported(gate)
    assert_prompt(gate, 2.0 + GRACE)
    assert_no_backend_left(pg_database)


# ---------------------------------------------------------------- (d) silent PostgreSQL
def test_postgres_connection_silent_mid_query(pytester, pg_database, ok_server):
    with blackhole_proxy() as proxy:
        url = f"postgresql+psycopg://{pg_database.server.user}@127.0.0.1:{proxy.port}/" \
              f"{pg_database.name}"
        gate = run_gate(pytester, {"databases": {"main": {"url": url}},
                                   "http": {"ok": {"base_url": ok_server}}}, [
            {"id": "SILENT", "title": "the network dies mid-query", "kind": "sql",
             "scalar": f"select 42 as {MARKER}", "expect": "== 42", "timeout": "2s"},
            http_check("OK", target="ok"),
        ])
        assert proxy.blackholed == 1, f"the query never reached the proxy:\n{gate.explain()}"
        with pg_database.server.connect() as admin:
            # behind a live black hole the server cannot know the client is gone
            print("opsgate sessions while the proxy is open:",
                  opsgate_backends(admin, pg_database.name))
    assert gate.result.ret == 1, gate.explain()
    assert_timed_out(gate, "SILENT", 2.0)
    assert_quick_reported(gate)
    assert_prompt(gate, 2.0 + GRACE)
    assert_no_backend_left(pg_database)


# ---------------------------------------------------------------- (e) silent Prometheus
def test_prometheus_that_never_answers(pytester, ok_server):
    with silent_listener() as hole:
        gate = run_gate(pytester, {"prometheus": {"url": hole.url, "timeout": "2s"},
                                   "http": {"ok": {"base_url": ok_server}}}, [
            {"id": "PROM", "title": "up", "kind": "promql", "query": "up", "expect": "== 1"},
            http_check("OK", target="ok"),
        ])
        assert hole.held, "Prometheus was never asked"
    assert gate.result.ret == 1, gate.explain()
    assert_timed_out(gate, "PROM", 2.0)
    assert_quick_reported(gate)
    assert_prompt(gate, 2.0 + GRACE)


# ---------------------------------------------------------------- (f) run deadline
def test_run_deadline_reports_what_ran_and_blocks_the_rest(pytester, ok_server):
    quick = [http_check(f"Q{n}", target="ok") for n in range(1, 5)]
    window = {"id": "W", "title": "20 s window", "kind": "window",
              "sample": {"http": {"target": "ok", "request": {"path": "/"}, "value": "count"}},
              "window": "20s", "interval": "1s", "expect": "non_increasing"}
    # a call blocked in C with a check timeout far beyond the run's deadline
    stuck = http_check("STUCK", target="drip", timeout="60s")
    with drip_server("headers") as drip:
        gate = run_gate(pytester, {"http": {"ok": {"base_url": ok_server},
                                            "drip": {"base_url": drip.url}}},
                        [window, stuck, *quick], "--run-deadline", "3s")
    assert gate.result.ret == 1, gate.explain()
    document = gate.document
    assert document is not None and document["verdict"] == "BLOCKED", gate.explain()
    for check in quick:
        assert gate.check(check["id"])["outcome"] == "passed"
    assert document["counts"]["passed"] == len(quick)
    started = parse(document["started_at"])
    for ident in ("W", "STUCK"):
        record = gate.check(ident)
        assert record["outcome"] in ("not_run", "error"), record
        assert f"dl:{ident}" in document["blocking"]
        ended = (parse(record["finished_at"]) - started).total_seconds()
        assert ended <= 3.0 + GRACE + SLACK, f"{ident} ended {ended:.2f}s into the run: {record}"
    assert_prompt(gate, 3.0 + SLACK)
