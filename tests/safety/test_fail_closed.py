"""Guarantee 5, fail closed: whatever goes wrong while measuring, a check never ends ``passed``.

Every case runs end to end through the plugin (``pytest checks --env FILE`` in a subprocess)
against a real component on loopback: a port nothing listens on, a name under ``.invalid``, a
self-signed TLS server, a server that answers too late, a fake Prometheus that answers 503 or
with ``warnings``, a real Prometheus over backfilled NaN, +Inf, gappy and missing series, a real
PostgreSQL with an empty table. The gate's own bookkeeping is tried too: a skipped hand-written
check, a check deselected with ``-k``, a run stopped early by ``-x`` / ``--maxfail`` /
``pytest.exit``, and a checklist that selects nothing all end BLOCKED, never PASS.

Two property tests then feed generated bad answers (Prometheus: error status, warnings, a wrong
``resultType``, empty results, NaN/Inf/garbage values, missing fields, HTML, truncated JSON,
HTTP 500/503/429; HTTP: non-JSON bodies, missing, null and wrongly typed fields, 5xx, a huge
body) through the real probes, in process (``ProbeRunner.observe`` + ``evaluate``), and assert
that the outcome is never ``passed``.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request, Response

from opsgate.config.loader import load_environment
from opsgate.errors import ProbeError
from opsgate.evaluate import evaluate
from opsgate.outcome import Outcome
from opsgate.runner import CheckCase, ProbeRunner
from tests.support.catalog import Gate
from tests.support.http import serve as serve_http
from tests.support.prometheus import constant, free_port, history, openmetrics

REPO = Path(__file__).resolve().parents[2]
#: Plugins of the suite's own tests that a gate run does not need (hypothesis alone adds ~1 s).
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")
RUN_TIMEOUT = 90.0


# ---------------------------------------------------------------- running the gate
def run_gate(pytester: pytest.Pytester, environment: dict[str, Any], *args: str,
             handwritten: dict[str, str] | None = None) -> Gate:
    """Run ``pytest checks --env FILE *args`` on ``environment`` in a subprocess.

    ``handwritten`` maps file names to the source of hand-written checks put in ``checks/``.
    """
    checks = pytester.path / "checks"
    if checks.exists():
        shutil.rmtree(checks)
    shutil.copytree(REPO / "checks", checks)
    for name, source in (handwritten or {}).items():
        (checks / name).write_text(source)
    path = pytester.path / "gate.yaml"
    path.write_text(yaml.safe_dump({"name": "gate", **environment}, sort_keys=False))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir",
                                           str(out), *QUIET, *args, timeout=RUN_TIMEOUT)
    found = sorted(out.glob("*/evidence.json")) if out.is_dir() else []
    document = json.loads(found[0].read_text()) if len(found) == 1 else None
    return Gate(result, document)


def assert_blocked(gate: Gate) -> None:
    """The run finished and the gate said BLOCKED (exit 1), never PASS."""
    assert gate.document is not None, f"no evidence.json was written:\n{gate.output}"
    assert gate.document["verdict"] == "BLOCKED", (gate.document["verdict"],
                                                   gate.document["reason"], gate.output)
    assert gate.result.ret == pytest.ExitCode.TESTS_FAILED, gate.output
    assert "opsgate verdict: BLOCKED" in gate.output


def assert_error(gate: Gate, ident: str, reason: str | None = None,
                 says: str | None = None) -> dict[str, Any]:
    """Check ``ident`` could not measure (``error``, shown as ERROR) and the gate is BLOCKED."""
    record = gate.check(ident)
    assert record["outcome"] == "error", (f"{ident} ended {record['outcome']!r}, not 'error': "
                                          f"{record['message']}")
    if reason is not None:
        assert record["reason"] == reason, (record["reason"], record["message"])
    if says is not None:
        assert says.lower() in record["message"].lower(), record["message"]
    assert f"gate:{ident}" in gate.document["blocking"]
    assert_blocked(gate)
    return record


def http_env(base_url: str, *checks: dict[str, Any], **target: Any) -> dict[str, Any]:
    return {"targets": {"http": {"api": {"base_url": base_url, "timeout": "2s", **target}}},
            "checks": list(checks)}


def http_check(ident: str, **expect: Any) -> dict[str, Any]:
    return {"id": ident, "title": f"http {ident}", "kind": "http",
            "request": {"path": "/health"}, "expect": expect or {"status": "== 200"}}


def sql_check(ident: str, query: str, expect: str, **options: Any) -> dict[str, Any]:
    return {"id": ident, "title": f"sql {ident}", "kind": "sql", "scalar": query,
            "expect": expect, **options}


def promql_check(ident: str, query: str, expect: str, **options: Any) -> dict[str, Any]:
    return {"id": ident, "title": f"promql {ident}", "kind": "promql", "query": query,
            "expect": expect, **options}


# ---------------------------------------------------------------- loopback servers
@dataclass
class Server:
    """A werkzeug server in a thread whose answer the test sets."""

    url: str
    answer: dict[str, Any]
    stop: Callable[[], None]

    def set(self, status: int = 200, body: bytes | str = b"{}",
            content_type: str = "application/json", delay: float = 0.0) -> None:
        self.answer.update(status=status, content_type=content_type, delay=delay,
                           body=body.encode() if isinstance(body, str) else body)


def serve(ssl_context: Any = None) -> Server:
    answer: dict[str, Any] = {"status": 200, "body": b"{}", "content_type": "application/json",
                              "delay": 0.0}

    @Request.application
    def app(request: Request) -> Response:
        if answer["delay"]:
            time.sleep(answer["delay"])
        return Response(answer["body"], status=answer["status"],
                        content_type=answer["content_type"])

    running = ExitStack()
    url = running.enter_context(serve_http(app, ssl_context=ssl_context))
    return Server(url, answer, running.close)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A plain-HTTP loopback server (its answer is reset for every test that uses it)."""
    running = serve()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_server(server: Server) -> Server:
    server.set()
    return server


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An HTTPS loopback server with a self-signed certificate made by ``openssl``."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is needed to make the self-signed certificate"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    running = serve(ssl_context=(str(cert), str(key)))
    running.set(body=json.dumps({"status": "ok"}))
    try:
        yield running
    finally:
        running.stop()


# ---------------------------------------------------------------- the transport
def test_connection_refused_is_an_error(pytester):
    gate = run_gate(pytester, http_env(f"http://127.0.0.1:{free_port()}", http_check("H1")))
    assert_error(gate, "H1", "connection", "could not connect")


def test_dns_failure_is_an_error(pytester):
    gate = run_gate(pytester, http_env("http://opsgate-fail-closed.invalid", http_check("H1")))
    assert_error(gate, "H1", "connection")


@pytest.mark.parametrize("case", ["self-signed certificate", "https to a plain-HTTP server"])
def test_tls_error_is_an_error(pytester, case, tls_server, fresh_server):
    """TLS that cannot be verified is never talked past, whatever the server would say."""
    fresh_server.set(body=json.dumps({"status": "ok"}))
    url = tls_server.url if case == "self-signed certificate" else (
        fresh_server.url.replace("http://", "https://"))
    gate = run_gate(pytester, http_env(url, http_check("H1", json={"status": "== ok"})))
    assert_error(gate, "H1", "connection", "TLS")


def test_http_timeout_is_an_error(pytester, fresh_server):
    fresh_server.set(body=json.dumps({"count": 0}), delay=2.0)
    check = {**http_check("H1", json={"count": "== 0"}), "timeout": "500ms"}
    gate = run_gate(pytester, http_env(fresh_server.url, check))
    record = assert_error(gate, "H1", "timeout")
    assert "timed out" in record["message"] or "no answer" in record["message"]


# ---------------------------------------------------------------- Prometheus answers
def prometheus_env(url: str, *checks: dict[str, Any]) -> dict[str, Any]:
    return {"targets": {"prometheus": {"url": url, "timeout": "5s"}}, "checks": list(checks)}


def vector(*values: str) -> dict[str, Any]:
    return {"resultType": "vector",
            "result": [{"metric": {"__name__": "og_up", "n": str(i)}, "value": [time.time(), v]}
                       for i, v in enumerate(values)]}


def test_prometheus_http_503_is_an_error(pytester, fresh_server):
    """The transport's 503 wins over a body that claims success."""
    fresh_server.set(503, json.dumps({"status": "success", "data": vector("1")}))
    gate = run_gate(pytester, prometheus_env(fresh_server.url, promql_check("P1", "og_up",
                                                                            "< 5")))
    record = assert_error(gate, "P1", "query")
    assert "503" in record["message"]


def test_prometheus_warnings_are_an_error(pytester, fresh_server):
    body = {"status": "success", "data": vector("1"),
            "warnings": ["PromQL warning: the result may be partial (store unavailable)"]}
    fresh_server.set(200, json.dumps(body))
    gate = run_gate(pytester, prometheus_env(fresh_server.url, promql_check("P1", "og_up",
                                                                            "< 5")))
    assert_error(gate, "P1", "no_data", "warnings")


@pytest.fixture(scope="module")
def prom(prometheus_module) -> str:
    """A real Prometheus: a healthy series, a short one, NaN and +Inf series."""
    end = time.time() - 30.0
    series = {
        "og_ok": constant(1, end=end),
        "og_short": history([1.0] * 13, step=15.0, end=end),  # the last 3 minutes only
        "og_nan": constant(math.nan, end=end),
        "og_inf": constant(math.inf, end=end),
    }
    return prometheus_module(openmetrics(series))


def test_partial_range_data_is_an_error(pytester, prom):
    """15 minutes asked, 3 minutes of data: 'held for 15 minutes' was not measured."""
    last_15m = {"range": {"last": "15m", "step": "1m"}}
    gate = run_gate(pytester, prometheus_env(prom, promql_check("P0", "og_ok", "< 5", **last_15m),
                                             promql_check("P1", "og_short", "< 5", **last_15m)))
    control = gate.check("P0")
    assert control["outcome"] == "passed", control["message"]
    record = gate.check("P1")
    points = record["evidence"].get("seen", {}).get("series", [{}])[0].get("points")
    assert record["outcome"] == "error", (
        f"a 15m range with {points} of 16 points ended {record['outcome']!r}: "
        f"{record['message']}")
    assert_error(gate, "P1", "no_data")


def test_empty_vector_is_an_error(pytester, prom):
    gate = run_gate(pytester, prometheus_env(
        prom, promql_check("P0", "og_ok", "== 1"),
        promql_check("P1", "og_no_such_metric", "< 5"),
        promql_check("P2", 'sum(og_ok{job="no-such-job"})', "exists")))
    assert gate.check("P0")["outcome"] == "passed"
    assert_error(gate, "P1", "no_data", "no series")
    assert_error(gate, "P2", "no_data", "no series")


def test_nan_and_inf_are_errors_whatever_the_condition(pytester, prom):
    """NaN and +Inf cannot be judged: ``< 5``, ``!= 0`` and ``exists`` all end ``error``."""
    checks = [promql_check("P0", "og_ok", "exists")]
    cases = {}
    for metric in ("og_nan", "og_inf", "og_ok / 0", "(og_ok - 1) / 0"):
        for condition in ("< 5", "!= 0", "exists"):
            ident = f"P{len(checks)}"
            checks.append(promql_check(ident, metric, condition))
            cases[ident] = f"{metric} {condition}"
    gate = run_gate(pytester, prometheus_env(prom, *checks))
    assert gate.check("P0")["outcome"] == "passed"
    passed = {cases[i]: gate.check(i)["message"] for i in cases
              if gate.check(i)["outcome"] != "error"}
    assert not passed, f"non-finite values judged instead of refused: {passed}"
    assert_blocked(gate)


def test_window_with_too_few_samples_is_an_error(pytester, prom, fresh_server):
    """A window missing samples cannot say the value held: too few is an error."""
    fresh_server.set(200, json.dumps({"other": 1}))  # every HTTP sample misses its field
    window = {"kind": "window", "window": "15m", "interval": "1m", "expect": "max < 5"}
    checks = [
        {"id": "W0", "title": "full", **window, "sample": {"promql": {"query": "og_ok"}}},
        {"id": "W1", "title": "gappy", **window, "sample": {"promql": {"query": "og_short"}}},
        {"id": "W2", "title": "sampled", "kind": "window", "window": "1s", "interval": "250ms",
         "expect": "max < 5", "sample": {"http": {"request": {"path": "/q"}, "value": "count"}}},
    ]
    environment = prometheus_env(prom, *checks)
    environment["targets"]["http"] = {"api": {"base_url": fresh_server.url, "timeout": "1s"}}
    gate = run_gate(pytester, environment)
    assert gate.check("W0")["outcome"] == "passed", gate.check("W0")["message"]
    assert_error(gate, "W1", "no_data", "at least 12 are needed")
    assert_error(gate, "W2", "no_data", "of 5 samples were taken")


# ---------------------------------------------------------------- empty data
def test_violations_over_an_empty_table_that_must_have_rows_is_an_error(pytester, pg_url,
                                                                        pg_admin):
    """No violator among no rows proves nothing when the table must have rows.

    No kind can say so in the check itself today (see the report): this is the acceptance test
    of the proposed ``require_rows: TABLE`` option of ``kind: sql`` violations queries.
    """
    pg_admin.execute("create table ledger_entries (id integer, amount integer)")
    environment = {"targets": {"databases": {"main": {"url": pg_url}}}, "checks": [
        {"id": "V1", "title": "no negative entries", "kind": "sql",
         "violations": "select id, amount from ledger_entries where amount < 0",
         "require_rows": "ledger_entries"}]}
    gate = run_gate(pytester, environment)
    assert gate.result.ret != pytest.ExitCode.USAGE_ERROR, (
        "kind: sql cannot say that a violations query needs rows (require_rows is refused):\n"
        + gate.result.stderr.str())
    assert_error(gate, "V1", "no_data", "ledger_entries")


def test_an_empty_table_blocks_with_a_row_count_check_beside_the_violations(pytester, pg_url,
                                                                            pg_admin):
    """What can be said today: a separate row count check fails on the empty table."""
    pg_admin.execute("create table ledger_entries (id integer, amount integer)")
    environment = {"targets": {"databases": {"main": {"url": pg_url}}}, "checks": [
        {"id": "V1", "title": "no negative entries", "kind": "sql",
         "violations": "select id, amount from ledger_entries where amount < 0"},
        {"id": "C1", "title": "the ledger has rows", "kind": "invariant", "rule": "count",
         "table": "ledger_entries", "expect": ">= 1"}]}
    gate = run_gate(pytester, environment)
    assert gate.check("V1")["outcome"] == "passed"
    assert gate.check("C1")["outcome"] == "failed", gate.check("C1")["message"]
    assert_blocked(gate)


# ---------------------------------------------------------------- what did not run
def sqlite_env(tmp_path: Path, *checks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    database = tmp_path / "gate.sqlite"
    if not database.exists():
        with sqlite3.connect(database) as connection:
            connection.execute("create table items (id integer primary key)")
            connection.execute("insert into items values (1)")
        connection.close()
    return {"targets": {"databases": {"main": {"url": f"sqlite:///{database}"}}},
            "checks": list(checks), **extra}


PASSING = sql_check("S1", "select count(*) from items", "== 1")


def test_skipped_required_check_blocks(pytester, tmp_path):
    source = ('import pytest\n\n\ndef test_not_today(opsgate):\n'
              '    pytest.skip("the operator thought this was not needed")\n')
    gate = run_gate(pytester, sqlite_env(tmp_path, PASSING),
                    handwritten={"test_hand.py": source})
    assert gate.check("S1")["outcome"] == "passed"
    skipped = [c for c in gate.document["checks"] if "test_not_today" in c["id"]]
    assert [c["outcome"] for c in skipped] == ["not_run"], gate.document["checks"]
    assert skipped[0]["id"] in gate.document["blocking"]
    reason = "not run: skipped: the operator thought this was not needed"
    assert skipped[0]["message"] == reason, skipped[0]["message"]
    assert_blocked(gate)
    assert any(line.strip().startswith("NOT_RUN") and line.endswith(reason)
               for line in gate.result.stdout.lines), gate.output


def test_deselected_check_blocks(pytester, tmp_path):
    """``-k`` that drops a selected check: fewer checks ran than the checklist selected.

    Decision: BLOCKED, and the deselected check is named as not run. A gate over part of a
    checklist did not check the checklist.
    """
    checks = [PASSING, sql_check("S2", "select count(*) from items", ">= 1")]
    gate = run_gate(pytester, sqlite_env(tmp_path, *checks), "-k", "not S2")
    gate.result.stdout.fnmatch_lines(["*1 passed, 1 deselected*"])
    assert gate.document is not None, gate.output
    assert gate.document["verdict"] != "PASS", (
        "a run with a selected check deselected by -k passed the gate: "
        f"{gate.document['reason']}")
    assert_blocked(gate)
    assert gate.document["counts"]["not_run"] == 1, gate.document["counts"]
    assert "gate:S2" in gate.document["blocking"], gate.document["blocking"]


STOP = ('import pytest\n\n\ndef test_stop_the_run(opsgate):\n'
        '    pytest.exit("stopping here", returncode=0)\n')


@pytest.mark.parametrize("stop", ["-x", "--maxfail=1", "pytest.exit(returncode=0)"])
def test_stopping_early_blocks(pytester, tmp_path, stop):
    """A run that stops before every collected check ran is BLOCKED, never PASS.

    The first check to run is advisory (its failure alone would not block) so only the early
    stop can block the gate.
    """
    advisory = sql_check("A1", "select count(*) from items", "== 2")
    checklist = {"gate": {"description": "the gate", "items": [
        {"text": "rows", "checks": ["A1", "S1", "S2"]}], "advisory": ["A1"]}}
    checks = [advisory, PASSING, sql_check("S2", "select count(*) from items", ">= 1")]
    if stop == "pytest.exit(returncode=0)":
        checks = checks[1:]
        del checklist["gate"]["advisory"]
        checklist["gate"]["items"][0]["checks"] = ["S1", "S2"]
        gate = run_gate(pytester, sqlite_env(tmp_path, *checks, checklists=checklist),
                        "--checklist", "gate", handwritten={"test_aa_stop.py": STOP})
    else:
        gate = run_gate(pytester, sqlite_env(tmp_path, *checks, checklists=checklist),
                        "--checklist", "gate", stop)
    assert_blocked(gate)
    counts = gate.document["counts"]
    assert counts["passed"] == 0 and counts["not_run"] >= 2, counts
    assert "did not run" in gate.document["reason"], gate.document["reason"]
    # every check that never ran is named in the evidence, and in junit.xml as a failure
    unrun = {c["id"]: c for c in gate.document["checks"] if c["outcome"] == "not_run"}
    assert {"S1", "S2"} <= set(unrun), gate.document["checks"]
    why = "the run was stopped (stopping here)" if stop.startswith("pytest.exit") else \
        "the run stopped early (stopping after 1 failures)"
    for record in (unrun["S1"], unrun["S2"]):
        assert record["reason"] == "stopped_early", record
        assert record["message"] == f"not run: {why}", record["message"]
    (junit,) = (pytester.path / "out").glob("*/junit.xml")
    failed = {case.get("name") for case in ElementTree.parse(junit).iter("testcase")
              if case.find("failure") is not None}
    assert {"test_check[gate:S1]", "test_check[gate:S2]"} <= failed, junit.read_text()


def test_checklist_that_selects_nothing_blocks(pytester, tmp_path):
    checklists = {"empty": {"description": "names no check"}}
    gate = run_gate(pytester, sqlite_env(tmp_path, PASSING, checklists=checklists),
                    "--checklist", "empty")
    assert_blocked(gate)
    assert gate.document["reason"] == "no check was selected"
    assert gate.document["checks"] == [] and gate.document["selected"] == 0


# ---------------------------------------------------------------- generated bad answers
PROBE_CHECKS = {
    # http: conditions on a JSON field only (no status condition), the permissive case
    "HJ1": {"kind": "http", "expect": {"json": {"count": "<= 5"}}},
    "HJ2": {"kind": "http", "expect": {"json": {"count": "== 0"}}},
    "HJ3": {"kind": "http", "expect": {"json": {"count": "!= 3"}}},
    "HJ4": {"kind": "http", "expect": {"json": {"count": "between 0 and 10"}}},
    "HJ5": {"kind": "http", "expect": {"json": {"count": "in [0, 1]"}}},
    "HJ6": {"kind": "http", "expect": {"json": {"count": "exists"}}},
    "HJ7": {"kind": "http", "expect": {"status": "== 200", "json": {"state": "== ok"}}},
    # promql: instant and range queries, and a window reading a range
    "PI1": {"kind": "promql", "query": "og_up", "expect": "< 5"},
    "PI2": {"kind": "promql", "query": "og_up", "expect": "exists"},
    "PI3": {"kind": "promql", "query": "og_up", "expect": "!= 3"},
    "PI4": {"kind": "promql", "query": "og_up", "expect": "between 0 and 10"},
    "PR1": {"kind": "promql", "query": "og_up", "expect": "< 5",
            "range": {"last": "5m", "step": "1m"}},
    "PR2": {"kind": "promql", "query": "og_up", "expect": "exists",
            "range": {"last": "5m", "step": "1m"}},
    "PW1": {"kind": "window", "window": "5m", "interval": "1m", "expect": "max < 5",
            "sample": {"promql": {"query": "og_up"}}},
}
HTTP_IDS = sorted(i for i in PROBE_CHECKS if i.startswith("H"))
PROM_IDS = sorted(i for i in PROBE_CHECKS if i.startswith("P"))
RANGE_IDS = {"PR1", "PR2", "PW1"}
HEALTHY_HTTP = {"count": 0, "state": "ok"}


class Probes:
    """The module's probe harness: one server, one loaded environment, one runner."""

    def __init__(self, server: Server, case: Callable[[str], CheckCase], runner: ProbeRunner):
        self.server, self.case, self.runner = server, case, runner

    def __repr__(self) -> str:
        return f"Probes({self.server.url})"

    def outcome(self, ident: str) -> tuple[Outcome, BaseException | None]:
        """What the plugin would conclude (``plugin.run_case``): a probe's error is ``error``."""
        try:
            observation = self.runner.observe(self.case(ident))
        except ProbeError as exc:
            return Outcome("error", str(exc), reason=exc.reason), exc
        except Exception as exc:  # the plugin reports these as error (reason 'internal')
            return Outcome("error", f"internal: {exc!r}", reason="internal"), exc
        return evaluate(self.case(ident).check, observation), None


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probes]:
    running = serve()
    path = tmp_path_factory.mktemp("probes") / "probes.yaml"
    checks = [{"id": ident, "title": ident, **spec} for ident, spec in PROBE_CHECKS.items()]
    path.write_text(yaml.safe_dump({"name": "probes", "targets": {
        "http": {"api": {"base_url": running.url, "timeout": "2s", "retries": 0}},
        "prometheus": {"url": running.url, "timeout": "2s"}}, "checks": checks}))
    env = load_environment(path)
    by_id = {check.id: CheckCase(env, check) for check in env.environment.checks}
    harness = Probes(running, by_id.__getitem__, ProbeRunner("fail-closed"))
    try:
        yield harness
    finally:
        harness.runner.close()
        running.stop()


def test_the_harness_passes_healthy_answers(probes):
    """The generated answers below are bad in one way only: the healthy ones pass."""
    probes.server.set(200, json.dumps(HEALTHY_HTTP))
    for ident in HTTP_IDS:
        assert probes.outcome(ident)[0].status == "passed", ident
    for ident in PROM_IDS:
        probes.server.set(200, json.dumps(healthy_prometheus(ident in RANGE_IDS)))
        outcome, error = probes.outcome(ident)
        assert outcome.status == "passed", (ident, outcome.message, error)


#: One evaluation time for every generated answer (data generation must not depend on the clock).
NOW = float(int(time.time()))


def healthy_prometheus(is_range: bool) -> dict[str, Any]:
    now = NOW
    if is_range:
        values = [[now - 60 * (5 - i), "1"] for i in range(6)]
        return {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"__name__": "og_up"}, "values": values}]}}
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "og_up"}, "value": [now, "1"]}]}}


JSON_LEAVES = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5)
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=5)
BAD_VALUES = st.sampled_from(["NaN", "+Inf", "-Inf", "Inf", "nan", "garbage", "", "1,5",
                              "0x10", None, [], {}, True])


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


@st.composite
def bad_prometheus(draw: st.DrawFn, is_range: bool) -> tuple[str, int, str, str]:
    """(what is wrong, HTTP status, content type, body) of a bad answer to one query."""
    healthy = healthy_prometheus(is_range)
    items = healthy["data"]["result"]
    fault = draw(st.sampled_from(["status error", "warnings", "wrong resultType",
                                  "empty result", "bad value", "missing field", "html",
                                  "truncated", "http error"]))
    status, body = 200, healthy
    if fault == "status error":
        status = draw(st.sampled_from([200, 400, 422, 503]))
        body = {"status": "error", "errorType": draw(st.sampled_from(["bad_data", "timeout",
                                                                      "execution"])),
                "error": draw(st.text(max_size=20))}
    elif fault == "warnings":
        body = {**healthy, "warnings": draw(st.lists(st.text(min_size=1, max_size=30),
                                                     min_size=1, max_size=3))}
    elif fault == "wrong resultType":
        wrong = draw(st.sampled_from(["vector", "scalar", "string", "banana", "", None, "-"]
                                     if is_range else
                                     ["matrix", "scalar", "string", "banana", "", None, "-"]))
        data = dict(healthy["data"])
        if wrong == "-":
            del data["resultType"]
        else:
            data["resultType"] = wrong
        if wrong in ("scalar", "string"):
            data["result"] = [NOW, "1"]
        elif wrong == "matrix":
            data["result"] = [{"metric": {}, "values": [[NOW, "1"]]}]
        elif wrong == "vector":
            data["result"] = [{"metric": {}, "value": [NOW, "1"]}]
        body = {**healthy, "data": data}
    elif fault == "empty result":
        body = {**healthy, "data": {**healthy["data"],
                                    "result": draw(st.sampled_from([[], None, {}]))}}
    elif fault == "bad value":
        value = draw(BAD_VALUES)
        item = dict(items[0])
        if is_range:
            values = [list(point) for point in item["values"]]
            values[draw(st.integers(0, len(values) - 1))][1] = value
            item["values"] = values
        else:
            item["value"] = [item["value"][0], value]
        body = {**healthy, "data": {**healthy["data"], "result": [item]}}
    elif fault == "missing field":
        where = draw(st.sampled_from(["status", "data", "result", "resultType", "sample"]))
        data = dict(healthy["data"])
        if where in ("result", "resultType"):
            del data[where]
        elif where == "sample":
            data["result"] = [{"metric": items[0]["metric"]}]
        body = {key: value for key, value in {**healthy, "data": data}.items() if key != where}
    elif fault == "html":
        status = draw(st.sampled_from([200, 502, 503]))
        text = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        return fault, status, "text/html", text
    elif fault == "truncated":
        text = json.dumps(healthy)
        return fault, 200, "application/json", text[:draw(st.integers(1, len(text) - 1))]
    else:
        status = draw(st.sampled_from([500, 502, 503, 504, 429]))
    return fault, status, "application/json", json.dumps(body)


@st.composite
def bad_http(draw: st.DrawFn) -> tuple[str, str, int, str, bytes]:
    """(check id, what is wrong, HTTP status, content type, body) of a bad HTTP answer."""
    fault = draw(st.sampled_from(["not json", "missing field", "null", "wrong type", "5xx",
                                  "huge body", "truncated"]))
    ident = draw(st.sampled_from([i for i in HTTP_IDS if i != "HJ7"]))
    status, content_type, body = 200, "application/json", dict(HEALTHY_HTTP)
    if fault == "not json":
        text = draw(st.sampled_from(["<html>ok</html>", "count=0", "OK", "{count: 0}", ""])
                    | st.text(max_size=30).filter(_not_json))
        return ident, fault, 200, draw(st.sampled_from(["text/html", "text/plain",
                                                        "application/json"])), text.encode()
    if fault == "missing field":
        other = draw(st.dictionaries(st.text(max_size=8).filter(lambda k: k != "count"),
                                     JSON_VALUES, max_size=4))
        document: Any = draw(st.sampled_from([other, [other], "count", 0, [0]]))
        return ident, fault, 200, content_type, json.dumps(document).encode()
    if fault == "null":
        body["count"] = None
    elif fault == "wrong type":
        ident = draw(st.sampled_from([i for i in HTTP_IDS if i not in ("HJ6", "HJ7")]))
        body["count"] = draw(st.lists(JSON_LEAVES, max_size=3)
                             | st.dictionaries(st.text(max_size=5), JSON_LEAVES, max_size=3)
                             | st.booleans()
                             | st.sampled_from(["abc", "zero", "0 items", "NaN", "Infinity",
                                                "none", "-"]))
    elif fault == "5xx":
        status = draw(st.integers(500, 599))
        ident = draw(st.sampled_from(HTTP_IDS))
    elif fault == "huge body":
        text = json.dumps({**body, "padding": "x" * 1_200_000})
        return ident, fault, status, content_type, text.encode()
    else:
        text = json.dumps({**body, "padding": "tail"})
        return ident, fault, status, content_type, _cut_text(text, draw).encode()
    return ident, fault, status, content_type, json.dumps(body).encode()


def _cut_text(text: str, draw: st.DrawFn) -> str:
    return text[:draw(st.integers(1, len(text) - 1))]


SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def bad_prometheus_case(draw: st.DrawFn) -> tuple[str, str, int, str, str]:
    """(check id, what is wrong, HTTP status, content type, body) for a PromQL check."""
    ident = draw(st.sampled_from(PROM_IDS), label="check")
    return (ident, *draw(bad_prometheus(ident in RANGE_IDS), label="answer"))


def _prometheus_example(ident: str, fault: str, data: dict[str, Any]) -> Any:
    return example((ident, fault, 200, "application/json",
                    json.dumps({"status": "success", "data": data})))


def _with_value(is_range: bool, value: Any) -> dict[str, Any]:
    data = healthy_prometheus(is_range)["data"]
    item = dict(data["result"][0])
    if is_range:
        item["values"] = [*item["values"][:-1], [item["values"][-1][0], value]]
    else:
        item["value"] = [item["value"][0], value]
    return {**data, "result": [item]}


JSON = "application/json"


@SETTINGS
@given(case=bad_prometheus_case())
# each kind of bad answer at least once, whatever the generator draws
@_prometheus_example("PI1", "wrong resultType", {"resultType": "scalar", "result": [NOW, "1"]})
@_prometheus_example("PI1", "wrong resultType", {"resultType": "matrix", "result": [
    {"metric": {}, "values": [[NOW, "1"]]}]})
@_prometheus_example("PR1", "wrong resultType", healthy_prometheus(False)["data"])
@_prometheus_example("PI1", "missing field", {"result": healthy_prometheus(False)["data"]
                                              ["result"]})
@_prometheus_example("PI2", "bad value", _with_value(False, "NaN"))
@_prometheus_example("PI2", "bad value", _with_value(False, "+Inf"))
@_prometheus_example("PR2", "bad value", _with_value(True, "NaN"))
@_prometheus_example("PW1", "bad value", _with_value(True, "-Inf"))
@_prometheus_example("PI3", "bad value", _with_value(False, True))
@_prometheus_example("PI1", "bad value", _with_value(False, "garbage"))
@example(("PI1", "http error", 503, JSON, json.dumps(healthy_prometheus(False))))
@example(("PR1", "warnings", 200, JSON, json.dumps({**healthy_prometheus(True),
                                                   "warnings": ["partial response"]})))
def test_generated_bad_prometheus_answers_never_pass(probes, case):
    ident, fault, status, content_type, body = case
    spec = PROBE_CHECKS[ident]
    probes.server.set(status, body, content_type)
    outcome, _ = probes.outcome(ident)
    shown = f"range {spec['expect']}" if "range" in spec else spec["expect"]
    assert outcome.status != "passed", (
        f"{ident} ({shown}) passed on a "
        f"bad answer ({fault}, HTTP {status}): {body[:300]!r} -> {outcome.message}")


@SETTINGS
@given(answer=bad_http())
@example(("HJ1", "5xx", 503, JSON, json.dumps(HEALTHY_HTTP).encode()))
@example(("HJ6", "5xx", 500, JSON, json.dumps(HEALTHY_HTTP).encode()))
@example(("HJ3", "wrong type", 200, JSON, b'{"count": "zero"}'))
@example(("HJ3", "wrong type", 200, JSON, b'{"count": [3, 4]}'))
@example(("HJ2", "wrong type", 200, JSON, b'{"count": false}'))
@example(("HJ1", "huge body", 200, JSON, json.dumps({"count": 0, "padding": "x" * 1_200_000})
          .encode()))
@example(("HJ4", "not json", 200, "text/html", b"<html>count: 0</html>"))
def test_generated_bad_http_answers_never_pass(probes, answer):
    ident, fault, status, content_type, body = answer
    probes.server.set(status, body, content_type)
    outcome, _ = probes.outcome(ident)
    assert outcome.status != "passed", (
        f"{ident} ({PROBE_CHECKS[ident]['expect']}) passed on a bad answer ({fault}, HTTP "
        f"{status}): {body[:300]!r} -> {outcome.message}")


@pytest.mark.parametrize("answer", [
    pytest.param({"resultType": "vector", "result": [{"metric": {}}]}, id="sample-missing"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, "garbage"]}]},
                 id="garbage-value"),
    pytest.param({"resultType": "vector", "result": [{"metric": {}, "value": [1, None]}]},
                 id="null-value"),
    pytest.param({"resultType": "vector", "result": {"og_up": 1}}, id="result-not-a-list"),
    pytest.param({"resultType": "matrix", "result": [{"metric": {}, "values": "1"}]},
                 id="values-not-a-list"),
])
def test_malformed_prometheus_answers_are_probe_errors_not_crashes(probes, answer):
    """A malformed answer is the probe's own error with a sentence, not a KeyError.

    The plugin turns any exception into ``error`` (so the gate holds either way), but an
    operator reading ``internal error while probing: KeyError: 'value'`` learns nothing.
    """
    probes.server.set(200, json.dumps({"status": "success", "data": answer}))
    outcome, error = probes.outcome("PI1")
    assert outcome.status == "error"
    assert isinstance(error, ProbeError), (
        f"the promql probe crashed with {error!r} instead of raising a ProbeError")
