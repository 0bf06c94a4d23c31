"""Guarantee 9, politeness: opsgate never crowds a production target while it measures it.

- HTTP: a loopback server counts the requests in flight (each takes 200 ms); 20 checks of every
  HTTP-reading kind against a target with ``concurrency: 3`` never have more than 3 in flight,
  with the default never more than 4, and an idempotency check's in-flight pair counts too.
- PostgreSQL: while 10 checks of the SQL-reading kinds run, the test polls
  ``pg_stat_activity``: never more than 2 connections named ``opsgate/<run id>``.
- Prometheus: at most 4 queries at once, and a range query over 7 days at a 1 s step asks
  for at most 1,100 points per series (the step is raised and the evidence says so).
- Retries: only idempotent requests, only on connection errors, 429 and 503, at most 2, with
  jittered backoff inside the check's deadline; every attempt is in the evidence and a check
  that passed on a retry says so; a POST (an HTTP check or a flow step) is never retried.

Every run goes end to end through the plugin (``pytest checks --env FILE`` in a subprocess);
the servers record what actually reached them.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import yaml
from werkzeug.wrappers import Request, Response

from tests.support.catalog import Gate
from tests.support.http import serve

REPO = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")
SLOW = 0.2


# ---------------------------------------------------------------- the servers
@dataclass
class Recorder:
    """What reached a server: requests in flight (and the most at once), every arrival."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    peak: int = 0
    arrivals: list[tuple[str, str, float]] = field(default_factory=list)
    hits: Counter = field(default_factory=Counter)
    queries: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        with self.lock:
            self.in_flight = self.peak = 0
            self.arrivals.clear()
            self.hits.clear()
            self.queries.clear()

    def enter(self, request: Request) -> int:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.arrivals.append((request.method, request.path, time.monotonic()))
            self.hits[(request.method, request.path)] += 1
            return self.hits[(request.method, request.path)]

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def times(self, path: str) -> list[float]:
        return [moment for _, where, moment in self.arrivals if where == path]


def _answer(request: Request, hit: int) -> tuple[int, Any]:
    """Behaviour by path: ``/ok``, ``/flaky/*`` (503 twice), ``/busy/*`` (429 twice),
    ``/down/*`` (503 always), ``/boom/*`` (500 always), POSTs answer 503 except ``/pay``."""
    first = request.path.split("/")[1]
    if request.method == "POST":
        return (201, {"id": 1}) if first == "pay" else (503, {"error": "busy"})
    if first in ("flaky", "busy") and hit <= 2:
        return (503 if first == "flaky" else 429), {"error": "try later"}
    if first == "down":
        return 503, {"error": "down"}
    if first == "boom":
        return 500, {"error": "boom"}
    return 200, {"count": 0, "state": "ok", "at": time.time()}


def _prometheus(request: Request, recorder: Recorder) -> Any:
    params = {key: values[-1] for key, values in parse_qs(request.query_string.decode()).items()}
    with recorder.lock:
        recorder.queries.append({"path": request.path, **params})
    metric = {"__name__": "og_up"}
    if request.path.endswith("/query_range"):
        start, end, step = (float(params[k]) for k in ("start", "end", "step"))
        count = int((end - start) / step) + 1
        values = [[start + i * step, "1"] for i in range(min(count, 20_000))]
        data = {"resultType": "matrix", "result": [{"metric": metric, "values": values}]}
    else:
        data = {"resultType": "vector", "result": [{"metric": metric,
                                                    "value": [time.time(), "1"]}]}
    return {"status": "success", "data": data}


@dataclass
class Server:
    url: str
    recorder: Recorder


@pytest.fixture(scope="module")
def server_module() -> Iterator[Server]:
    recorder = Recorder()

    @Request.application
    def app(request: Request) -> Response:
        hit = recorder.enter(request)
        try:
            slow = SLOW if request.path.startswith("/slow/") else 0.0
            time.sleep(float(request.args.get("delay", slow)))
            if "/api/v1/" in request.path:
                status, body = 200, _prometheus(request, recorder)
            else:
                status, body = _answer(request, hit)
            return Response(json.dumps(body), status=status, content_type="application/json")
        finally:
            recorder.leave()

    with serve(app) as url:
        yield Server(url, recorder)


@pytest.fixture
def server(server_module: Server) -> Server:
    server_module.recorder.reset()
    return server_module


@pytest.fixture
def dropping_server() -> Iterator[tuple[str, list[float]]]:
    """A raw server that reads each request and hangs up without answering, twice, then
    answers 200: a connection error as a client sees it. Yields its URL and arrival times."""
    listener = socket.create_server(("127.0.0.1", 0))
    arrivals: list[float] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2.0)
                data = b""
                while b"\r\n\r\n" not in data:
                    try:
                        chunk = connection.recv(4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    data += chunk
                arrivals.append(time.monotonic())
                if len(arrivals) > 2:
                    body = b'{"count": 0}'
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                       b"Connection: close\r\nContent-Length: "
                                       + str(len(body)).encode() + b"\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", arrivals
    finally:
        listener.close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- running the gate
def run_gate(pytester: pytest.Pytester, environment: dict[str, Any], *args: str) -> Gate:
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    path = pytester.path / "polite.yaml"
    path.write_text(yaml.safe_dump({"name": "polite", **environment}, sort_keys=False))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir",
                                           str(out), *QUIET, *args, timeout=120)
    found = sorted(out.glob("*/evidence.json")) if out.is_dir() else []
    return Gate(result, json.loads(found[0].read_text()) if len(found) == 1 else None)


def http_checks(count: int, delay: float = SLOW) -> list[dict[str, Any]]:
    """``count`` checks of every kind that reads an HTTP target, each request ``delay`` long."""
    request = {"path": "/ok", "params": {"delay": str(delay)}}
    kinds: list[dict[str, Any]] = [
        {"kind": "http", "request": request, "expect": {"json": {"count": "== 0"}}},
        {"kind": "flow", "steps": [{"name": "one", "request": request,
                                    "expect": {"status": "== 200"}},
                                   {"name": "two", "request": request,
                                    "expect": {"json": {"state": "== ok"}}}]},
        {"kind": "window", "window": "400ms", "interval": "200ms", "expect": "max <= 0",
         "sample": {"http": {"request": request, "value": "count"}}},
        {"kind": "freshness", "max_age": "1h",
         "source": {"http": {"request": request, "value": "at"}}},
        {"kind": "baseline", "expect": "<= baseline",
         "current": {"http": {"request": request, "value": "count"}},
         "baseline": {"http": {"request": request, "value": "count"}}},
    ]
    return [{"id": f"H{n}", "title": f"http {n}", **kinds[n % len(kinds)]}
            for n in range(count)]


def http_env(url: str, checks: list[dict[str, Any]], **target: Any) -> dict[str, Any]:
    return {"targets": {"http": {"api": {"base_url": url, "timeout": "10s", **target}}},
            "checks": checks}


# ---------------------------------------------------------------- HTTP concurrency
@pytest.mark.parametrize("bound", [3, None], ids=["concurrency 3", "default 4"])
def test_http_requests_in_flight_never_exceed_the_target_bound(pytester, server, bound):
    target = {"concurrency": bound} if bound else {}
    gate = run_gate(pytester, http_env(server.url, http_checks(20), **target))
    limit = bound or 4
    assert gate.result.ret == 0, gate.output
    assert len(server.recorder.arrivals) >= 20
    assert server.recorder.peak <= limit, (
        f"{server.recorder.peak} requests in flight at once; the bound is {limit}")
    assert server.recorder.peak >= 2, "the checks did not run concurrently at all"


def test_an_idempotency_pair_counts_against_the_bound(pytester, server):
    """The in-flight pair is two requests at once: with others running, still at most 3."""
    checks = http_checks(8)
    checks.append({"id": "I1", "title": "idempotent payments", "kind": "idempotency",
                   "mutating": True,
                   "request": {"method": "POST", "path": "/pay", "params": {"delay": "0.3"},
                               "json": {"amount": 1}},
                   "other_json": {"amount": 2}, "in_flight_json": {"amount": 1},
                   "expect": {"conflict": "in [200, 201, 409]", "in_flight": "in [201, 409]"}})
    checks += http_checks(20)[8:]
    gate = run_gate(pytester, http_env(server.url, checks, concurrency=3), "--allow-mutations")
    assert gate.document is not None, gate.output
    posts = [a for a in server.recorder.arrivals if a[0] == "POST"]
    assert len(posts) == 5, posts  # first, replay, conflict, and the pair
    assert server.recorder.peak <= 3, (
        f"{server.recorder.peak} requests in flight at once against a target with "
        "concurrency 3 (the idempotency check's pair holds one slot for two requests)")


# ---------------------------------------------------------------- database connections
def test_a_database_never_sees_more_than_two_opsgate_connections(pytester, pg_url, pg_admin,
                                                                 pg_database):
    pg_admin.execute("create table jobs (id integer, beat_at timestamptz)")
    pg_admin.execute("insert into jobs select n, now() from generate_series(1, 5) n")
    pg_admin.execute("create function slow_one() returns integer language sql as "
                     "$$ select 1 from pg_sleep(0.3) $$")
    slow = "select slow_one() + count(*) - count(*) from jobs"
    checks = [
        *({"id": f"S{n}", "title": "scalar", "kind": "sql", "scalar": slow, "expect": "== 1"}
          for n in range(4)),
        *({"id": f"V{n}", "title": "violations", "kind": "sql",
           "violations": "select id from jobs where slow_one() = 2"} for n in range(2)),
        {"id": "I1", "title": "count", "kind": "invariant", "rule": "count", "table": "jobs",
         "expect": "== 5"},
        {"id": "P1", "title": "reachable", "kind": "postgres", "check": "reachable"},
        {"id": "F1", "title": "fresh", "kind": "freshness", "max_age": "1h",
         "source": {"sql": {"query": "select max(beat_at) from jobs where slow_one() = 1"}}},
        {"id": "W1", "title": "window", "kind": "window", "window": "600ms",
         "interval": "300ms", "expect": "max <= 1", "sample": {"sql": {"query": slow}}},
    ]
    environment = {"targets": {"databases": {"main": {"url": pg_url}}}, "checks": checks}
    done: dict[str, Gate] = {}
    runner = threading.Thread(target=lambda: done.setdefault(
        "gate", run_gate(pytester, environment)))
    runner.start()
    counts = []
    while runner.is_alive():
        (count,) = pg_admin.execute(
            "select count(*) from pg_stat_activity where application_name like 'opsgate/%%' "
            "and datname = %s", (pg_database.name,)).fetchone()
        counts.append(count)
        time.sleep(0.01)
    runner.join()
    gate = done["gate"]
    assert gate.result.ret == 0, gate.output
    assert max(counts) <= 2, f"{max(counts)} opsgate connections at once (polled {counts})"
    assert max(counts) == 2, f"the poll never saw the run use both connections: {counts}"


# ---------------------------------------------------------------- Prometheus
def test_prometheus_queries_in_flight_stay_within_four(pytester, server):
    """12 instant queries against a Prometheus that takes 200 ms each: at most 4 at once."""
    checks = [{"id": f"P{n}", "title": "up", "kind": "promql", "query": "og_up",
               "expect": "== 1"} for n in range(12)]
    environment = {"targets": {"prometheus": {"url": server.url + "/slow", "timeout": "10s"}},
                   "checks": checks}
    gate = run_gate(pytester, environment)
    assert gate.result.ret == 0, gate.output
    assert len(server.recorder.queries) == 12
    assert server.recorder.peak <= 4, f"{server.recorder.peak} PromQL queries at once"
    assert server.recorder.peak >= 2, "the queries did not run concurrently at all"


def test_a_range_query_asks_for_at_most_1100_points_per_series(pytester, server):
    check = {"id": "R1", "title": "a week at 1 s", "kind": "promql", "query": "og_up",
             "expect": "== 1", "range": {"last": "7d", "step": "1s"}}
    gate = run_gate(pytester, {"targets": {"prometheus": {"url": server.url}},
                               "checks": [check]})
    (query,) = [q for q in server.recorder.queries if q["path"].endswith("/query_range")]
    start, end, step = (float(query[k]) for k in ("start", "end", "step"))
    assert end - start == pytest.approx(7 * 86400, abs=1)
    points = math.floor((end - start) / step) + 1  # what Prometheus evaluates
    assert points <= 1100, f"step {step} s asks for {points} points, more than 1,100"
    record = gate.check("R1")
    asked = record["evidence"]["asked"]
    assert float(asked["range"]["step"]) == pytest.approx(step, rel=1e-3)
    assert "step raised from 1s" in asked["note"] and "1100 points" in asked["note"], asked
    assert record["outcome"] == "passed", record["message"]


# ---------------------------------------------------------------- retries
def attempts(record: dict[str, Any]) -> list[dict[str, Any]]:
    return record["evidence"]["seen"].get("attempts") or []


def test_503_twice_then_200_passes_on_the_third_attempt_and_says_so(pytester, server):
    checks = [{"id": "R1", "title": "flaky", "kind": "http",
               "request": {"path": "/flaky/r1"}, "expect": {"status": "== 200"}},
              {"id": "R2", "title": "rate limited", "kind": "http",
               "request": {"path": "/busy/r2"}, "expect": {"status": "== 200"}}]
    gate = run_gate(pytester, http_env(server.url, checks))
    assert gate.result.ret == 0, gate.output
    for ident, first in (("R1", 503), ("R2", 429)):
        record = gate.check(ident)
        assert record["outcome"] == "passed", record["message"]
        assert [a.get("status") for a in attempts(record)] == [first, first, 200], record
        assert "attempt 3 of 3" in record["evidence"]["seen"]["note"], record["evidence"]
    assert server.recorder.hits[("GET", "/flaky/r1")] == 3
    assert server.recorder.hits[("GET", "/busy/r2")] == 3


def test_503_forever_is_tried_three_times_and_500_once(pytester, server):
    checks = [{"id": "D1", "title": "down", "kind": "http", "request": {"path": "/down/d1"},
               "expect": {"status": "== 200"}},
              {"id": "B1", "title": "boom", "kind": "http", "request": {"path": "/boom/b1"},
               "expect": {"status": "== 200"}}]
    gate = run_gate(pytester, http_env(server.url, checks))
    assert gate.result.ret == 1, gate.output
    down, boom = gate.check("D1"), gate.check("B1")
    assert down["outcome"] in ("failed", "error") and boom["outcome"] in ("failed", "error")
    assert [a.get("status") for a in attempts(down)] == [503, 503, 503], down["evidence"]
    assert server.recorder.hits[("GET", "/down/d1")] == 3
    assert server.recorder.hits[("GET", "/boom/b1")] == 1, "a 500 was retried"


def test_a_dropped_connection_is_retried(pytester, dropping_server):
    url, arrivals = dropping_server
    check = {"id": "C1", "title": "dropped", "kind": "http", "request": {"path": "/x"},
             "expect": {"json": {"count": "== 0"}}}
    gate = run_gate(pytester, http_env(url, [check]))
    record = gate.check("C1")
    assert record["outcome"] == "passed", record["message"]
    assert len(arrivals) == 3
    tried = attempts(record)
    assert len(tried) == 3 and all("error" in a for a in tried[:2]), tried
    assert tried[2].get("status") == 200


def test_a_post_is_never_retried(pytester, server):
    """A POST that gets 503, in a mutating HTTP check and in a mutating flow: one attempt."""
    checks = [{"id": "M1", "title": "create", "kind": "http", "mutating": True,
               "request": {"method": "POST", "path": "/jobs/m1", "json": {"type": "smoke"}},
               "expect": {"status": "in [200, 201]"}},
              {"id": "F1", "title": "flow", "kind": "flow", "mutating": True, "steps": [
                  {"name": "create", "request": {"method": "POST", "path": "/jobs/f1",
                                                 "json": {"type": "smoke"}},
                   "expect": {"status": "in [200, 201]"}},
                  {"name": "read", "request": {"path": "/ok"}}]}]
    gate = run_gate(pytester, http_env(server.url, checks), "--allow-mutations")
    assert gate.result.ret == 1, gate.output
    assert server.recorder.hits[("POST", "/jobs/m1")] == 1, "a POST was sent again"
    assert server.recorder.hits[("POST", "/jobs/f1")] == 1, "a flow's POST was sent again"
    assert gate.check("M1")["outcome"] != "passed" and gate.check("F1")["outcome"] != "passed"


def test_retries_back_off_with_jitter_inside_the_deadline(pytester, server):
    """Backoff before attempt 2 is 0.1-0.2 s and before attempt 3 0.2-0.4 s, never the same
    twice; a check whose deadline leaves no room for a retry does not try again."""
    checks = [{"id": f"J{n}", "title": "down", "kind": "http",
               "request": {"path": f"/down/j{n}"}, "expect": {"status": "== 200"}}
              for n in range(6)]
    checks.append({"id": "T1", "title": "tight", "kind": "http", "timeout": "350ms",
                   "request": {"path": "/down/t1", "params": {"delay": "0.1"}},
                   "expect": {"status": "== 200"}})
    gate = run_gate(pytester, http_env(server.url, checks))
    assert gate.document is not None, gate.output
    first_gaps, second_gaps = [], []
    for n in range(6):
        times = server.recorder.times(f"/down/j{n}")
        assert len(times) == 3, times
        first_gaps.append(times[1] - times[0])
        second_gaps.append(times[2] - times[1])
    slack = 0.3  # the request itself and a busy machine's scheduling
    assert all(0.1 <= gap <= 0.2 + slack for gap in first_gaps), first_gaps
    assert all(0.2 <= gap <= 0.4 + slack for gap in second_gaps), second_gaps
    assert max(first_gaps) - min(first_gaps) > 0.005, f"no jitter: {first_gaps}"
    assert max(second_gaps) - min(second_gaps) > 0.005, f"no jitter: {second_gaps}"
    tight = server.recorder.times("/down/t1")
    assert 1 <= len(tight) <= 2, tight
    # a third attempt would arrive 0.5 s or more after the first; the deadline is 0.35 s
    assert tight[-1] - tight[0] <= 0.35 + 0.1, f"an attempt after the deadline: {tight}"
    assert gate.check("T1")["outcome"] != "passed"
