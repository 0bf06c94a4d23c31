"""``kind: window`` end to end through the plugin: real HTTP, SQLite, PostgreSQL, Prometheus.

A small HTTP server in a thread answers with a DLQ count that stays flat or grows with time;
SQLite and PostgreSQL tables grow while a writer thread inserts rows during the window;
Prometheus serves backfilled history for the range-query form. Windows are 3 s sampled every
0.5 s. Each test writes an environment file, runs ``pytest checks --env FILE`` in a subprocess
and reads the run's evidence.json.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from opsgate.evidence import verify
from tests.support.catalog import Run, run_gate
from tests.support.http import serve
from tests.support.prometheus import constant, history, openmetrics

WINDOW = {"window": "3s", "interval": "500ms"}


# ---------------------------------------------------------------- running the gate
def window(ident: str, sample: dict[str, Any], expect: Any, **options: Any) -> dict[str, Any]:
    return {"id": ident, "title": f"window {ident}", "kind": "window", "sample": sample,
            **WINDOW, "expect": expect, **options}


def http_value(path: str, value: str = "dlq.count") -> dict[str, Any]:
    return {"http": {"request": {"path": path}, "value": value}}


# ---------------------------------------------------------------- real services
@pytest.fixture
def dlq_server() -> Iterator[str]:
    """A DLQ endpoint per behaviour: flat, growing with time, broken, wordy, flaky."""
    start, calls = time.monotonic(), Counter()

    @Request.application
    def app(request: Request) -> Response:
        calls[request.path] += 1
        status, body = 200, {"dlq": {"count": 3}}
        if request.path == "/dlq/growing":
            body = {"dlq": {"count": 3 + int((time.monotonic() - start) / 0.4)}}
        elif request.path == "/dlq/words":
            body = {"dlq": {"count": "many"}}
        elif request.path == "/dlq/flaky" and calls[request.path] % 3:
            status, body = 500, {"error": "worker crashed"}
        return Response(json.dumps(body), status=status, content_type="application/json")

    with serve(app) as url:
        yield url


@contextmanager
def inserting(insert: Any, every: float = 0.3) -> Iterator[None]:
    """Call ``insert()`` every ``every`` seconds in a thread while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            insert()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """A SQLite file with three queued jobs."""
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("create table work_items (id integer primary key, status text)")
        conn.executemany("insert into work_items (status) values (?)", [("queued",)] * 3)
    return path


def sqlite_insert(path: Path) -> Any:
    def insert() -> None:
        with sqlite3.connect(path, timeout=5) as conn:
            conn.execute("insert into work_items (status) values ('queued')")
    return insert


# ---------------------------------------------------------------- sampled windows
def test_sampled_http_and_sqlite_windows(pytester, dlq_server, sqlite_file):
    queued = {"sql": {"query": "select count(*) from work_items where status = 'queued'"}}
    targets = {"http": {"api": {"base_url": dlq_server, "timeout": "2s", "retries": 0}},
               "databases": {"main": {"url": f"sqlite:///{sqlite_file}"}}}
    checks = [
        window("W1", http_value("/dlq/flat"), "non_increasing", label="DLQ count"),
        window("W2", http_value("/dlq/growing"), "non_increasing", label="DLQ count"),
        window("W3", http_value("/dlq/growing"), ["last <= 100", "delta <= 0"],
               label="DLQ count"),
        window("W4", http_value("/dlq/flaky"), "non_increasing"),
        window("W5", http_value("/dlq/words"), "all <= 5"),
        window("W6", http_value("/dlq/flat", "dlq.missing"), "all <= 5"),
        window("Q3", queued, "increase == 0", label="queued jobs"),
    ]
    with inserting(sqlite_insert(sqlite_file)):
        run = run_gate(pytester, targets, checks)
    assert run.result.ret == 1
    assert verify(run.document)
    assert run.seconds < 12, "the windows run concurrently, not one after another"

    flat = run.check("W1")
    assert flat["outcome"] == "passed", flat["message"]
    assert flat["message"].startswith("DLQ count (3 -> 3, never up in ")
    samples = flat["evidence"]["seen"]["samples"]
    assert 5 <= len(samples) <= 7 and {value for _, value in samples} == {3}
    stamps = [ts for ts, _ in samples]
    assert stamps == sorted(stamps) and 2.5 <= stamps[-1] - stamps[0] <= 3.6
    assert flat["evidence"]["asked"]["planned"] == 7
    assert flat["evidence"]["asked"]["min_samples"] == 5
    assert flat["evidence"]["asked"]["source"]["url"].endswith("/dlq/flat")

    grew = run.check("W2")
    assert grew["outcome"] == "failed"
    assert " -> " in grew["message"] and ", up at " in grew["message"]
    assert grew["message"].endswith(") non_increasing") and grew["observed"] >= 1

    both = run.check("W3")
    assert both["outcome"] == "failed"
    assert [j["ok"] for j in both["judgements"]] == [True, False]
    assert "delta <= 0" in both["message"] and "last <= 100" not in both["message"]

    flaky = run.check("W4")
    assert flaky["outcome"] == "error"
    assert "samples were taken" in flaky["message"] and "at least 5" in flaky["message"]
    seen = flaky["evidence"]["seen"]
    assert seen["errors"] and all("HTTP 500" in e["error"] for e in seen["errors"])
    assert len(seen["samples"]) + len(seen["errors"]) == 7

    for ident, words in (("W5", "not a number"), ("W6", "no value at 'dlq.missing'")):
        record = run.check(ident)
        assert record["outcome"] == "error", record["message"]
        assert words in record["message"]

    queue = run.check("Q3")
    assert queue["outcome"] == "failed"
    assert queue["message"].startswith("queued jobs (+") and "first rise at" in queue["message"]


def test_sampled_postgres_window(pytester, pg_url, pg_admin, pg_database):
    pg_admin.execute("create table dead_letters (id serial primary key, reason text)")
    pg_admin.execute("insert into dead_letters (reason) values ('a'), ('b')")
    pg_admin.execute("create table outbox (id serial primary key)")
    writer = pg_database.connect()

    def insert() -> None:
        writer.execute("insert into dead_letters (reason) values ('timeout')")

    checks = [
        window("Q2", {"sql": {"query": "select count(*) from dead_letters"}}, "non_increasing",
               label="DLQ count"),
        window("Q2b", {"sql": {"query": "select count(*) from outbox"}}, "all == 0",
               label="outbox depth"),
    ]
    with inserting(insert):
        run = run_gate(pytester, {"databases": {"main": {"url": pg_url}}}, checks)
    assert run.result.ret == 1
    grew = run.check("Q2")
    assert grew["outcome"] == "failed"
    assert re.fullmatch(r"DLQ count \((\d+) -> (\d+), up at \d\d:\d\d:\d\dZ, \d+ times\) "
                        r"non_increasing", grew["message"]), grew["message"]
    assert grew["evidence"]["asked"]["source"]["sql"] == "select count(*) from dead_letters"
    empty = run.check("Q2b")
    assert empty["outcome"] == "passed", empty["message"]
    assert "all == 0" in empty["message"]


# ---------------------------------------------------------------- range-query windows
def test_promql_window_is_one_range_query(pytester, prometheus):
    end = time.time() - 30
    url = prometheus(openmetrics({
        "dlq_depth": constant(3),
        "job_errors_total": history(lambda t: (t - end + 1800) // 300, span=1800, end=end),
        "stale_gauge": constant(1, minutes=10, end=end - 12 * 60),
        "nan_gauge": constant(float("nan")),
    }))
    checks = [
        window("M6", {"promql": {"query": "max(dlq_depth)"}}, "non_increasing",
               window="15m", interval="1m", label="DLQ depth"),
        window("M5", {"promql": {"query": "sum(job_errors_total)"}}, "increase == 0",
               window="15m", interval="1m", label="job errors"),
        window("G1", {"promql": {"query": "stale_gauge"}}, "all < 5", window="15m",
               interval="1m"),
        window("G2", {"promql": {"query": "nan_gauge"}}, "all < 5", window="15m",
               interval="1m"),
    ]
    run = run_gate(pytester, {"prometheus": {"url": url, "timeout": "5s"}}, checks)
    assert run.result.ret == 1
    assert run.seconds < 10, "a range query does not wait for the window"
    steady = run.check("M6")
    assert steady["outcome"] == "passed", steady["message"]
    assert len(steady["evidence"]["seen"]["samples"]) == 16
    assert steady["evidence"]["asked"]["mode"] == "range query"
    assert steady["evidence"]["asked"]["source"]["query"] == "max(dlq_depth)"
    counting = run.check("M5")
    assert counting["outcome"] == "failed"
    assert counting["message"].startswith("job errors (+") and counting["observed"] >= 2
    gaps = run.check("G1")
    assert gaps["outcome"] == "error"
    assert "points over 15m; at least 12 are needed" in gaps["message"]
    nan = run.check("G2")
    assert nan["outcome"] == "error" and "nan" in nan["message"].lower()


# ---------------------------------------------------------------- configuration
def config_errors(run: Run, *expected: tuple[str, str]) -> None:
    """Exit status 4, no traceback, and each (check, message) on one ``FILE:LINE:`` line."""
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    errors = run.result.stderr.str()
    assert "Traceback" not in errors
    lines = [line.strip() for line in errors.splitlines()]
    for where, what in expected:
        assert any(re.match(rf"\S+itest\.yaml:\d+: {re.escape(where)}", line) and what in line
                   for line in lines), f"{where} ... {what!r} not in:\n{errors}"


def test_window_configuration_errors_name_file_and_line(pytester, sqlite_file):
    targets = {"databases": {"main": {"url": f"sqlite:///{sqlite_file}"}}}
    one = {"sql": {"query": "select 1"}}
    run = run_gate(pytester, targets, [
        window("C1", one, "< 5"),
        window("C2", one, "non_increasing", window="1s", interval="2s"),
        window("C3", {**one, "promql": {"query": "up"}}, "max < 1"),
        window("C4", {"http": {"value": "a[", "request": {}}}, "max < 1"),
        window("C5", one, "non_increasing", min_samples=50),
        window("C6", one, "max < 1", interval="10ms"),
        window("C7", {"sql": {"query": "delete from work_items"}}, "max < 1"),
        window("C8", {"promql": {"query": "sum(("}}, "max < 1"),
    ])
    config_errors(run, ("checks[0] (C1)", "for every point write 'all < 5'"),
                  ("checks[1] (C2)", "must be at least one interval"),
                  ("checks[2] (C3)", "exactly one of http, sql, promql (got sql and promql)"),
                  ("checks[3] (C4)", "'a[' is not a JMESPath expression"),
                  ("checks[4] (C5)", "min_samples (50) is more than the 7 samples"),
                  ("checks[5] (C6)", "interval must be at least 100ms"),
                  ("checks[6] (C7)", "DELETE is not allowed because it changes data"),
                  ("checks[7] (C8)", "'sum((' does not parse"))
    run = run_gate(pytester, targets, [
        window("R1", http_value("/x"), "non_increasing"),
        window("R2", {"sql": {"database": "replica", "query": "select 1"}}, "max < 1"),
        window("R3", {"promql": {"query": "up"}}, "max < 1"),
    ])
    config_errors(run, ("checks[0]", "needs a target under 'targets.http'"),
                  ("checks[1] (R2).sample.sql.database", "unknown database 'replica'"),
                  ("checks[2]", "a window check needs 'targets.prometheus.url'"))
