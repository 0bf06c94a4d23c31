"""``kind: baseline``, ``freshness`` and ``alerts`` end to end through the plugin.

One Prometheus serves the module: p95 gauges per track (canary, stable, and one that rose 20
minutes ago), a job's last-success timestamp, a DLQ depth, and alerting rules (one firing
critical, one quiet warning, one pending, a watchdog). SQLite, the real PostgreSQL, a small
HTTP server and a previous run's evidence.json provide the other sources.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from opsgate.evidence import verify
from tests.integration.test_window_kinds import config_errors
from tests.support.catalog import run_gate
from tests.support.prometheus import (
    constant,
    free_port,
    history,
    openmetrics,
    query,
    wait_for,
)

RULES = """\
groups:
  - name: itest
    rules:
      - alert: DLQGrowing
        expr: max(dlq_depth) > 5
        labels: {severity: critical, team: payments}
      - alert: HighLatency
        expr: max(latency_seconds) > 1
        labels: {severity: warning}
      - alert: SlowBurn
        expr: max(dlq_depth) > 5
        for: 1h
        labels: {severity: ticket}
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: none}
"""
RECORDING_ONLY = """\
groups:
  - name: itest
    rules:
      - record: dlq:depth:max
        expr: max(dlq_depth)
"""


@pytest.fixture(scope="module")
def prom(prometheus_module) -> str:
    end = time.time() - 30.0
    url = prometheus_module(openmetrics({
        'p95_seconds{track="canary"}': constant(0.31),
        'p95_seconds{track="stable"}': constant(0.25),
        'p95_seconds{track="all"}': history(lambda t: 0.31 if t > end - 20 * 60 else 0.25,
                                            span=3600, end=end),
        "job_last_success_timestamp_seconds": constant(end - 120),
        "dlq_depth": constant(10),
        "latency_seconds": constant(0.1),
    }), rules=RULES)
    wait_for(url, 'ALERTS{alertname="DLQGrowing",alertstate="firing"}')
    wait_for(url, 'ALERTS{alertname="SlowBurn",alertstate="pending"}')
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file with one empty table (queries here compute their own values)."""
    path = tmp_path / "app.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("create table rollups (bucket_date text, total integer)")
    return f"sqlite:///{path}"


@pytest.fixture
def jobs_server() -> Iterator[str]:
    """``/jobs/last``: a job's last success as epoch milliseconds, ISO text and epoch text."""

    @Request.application
    def app(request: Request) -> Response:
        now = time.time()
        body = {"last_success_ms": int((now - 2) * 1000),
                "finished": datetime.fromtimestamp(now - 400, UTC).isoformat(),
                "epoch_text": f"{now - 3:.3f}", "never": None}
        return Response(json.dumps(body), content_type="application/json")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def check(ident: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": ident, "title": f"{kind} {ident}", "kind": kind, **fields}


def sql(query: str) -> dict[str, Any]:
    return {"sql": {"query": query}}


def promql(query: str, **options: Any) -> dict[str, Any]:
    return {"promql": {"query": query, **options}}


# ---------------------------------------------------------------- baseline
def test_baseline_from_sources(pytester, prom, sqlite_url):
    targets = {"databases": {"main": {"url": sqlite_url}}, "prometheus": {"url": prom}}
    canary, stable = 'p95_seconds{track="canary"}', 'p95_seconds{track="stable"}'
    run = run_gate(pytester, targets, [
        check("B1", "baseline", current=sql("select 0.31"), baseline=sql("select 0.25"),
              expect="<= baseline * 1.1", label="p95 current"),
        check("B2", "baseline", current=sql("select 0.31"), baseline=sql("select 0.25"),
              expect="<= baseline + 0.1", label="p95 current"),
        check("M7", "baseline", current=promql(canary), baseline=promql(stable),
              expect="<= baseline * 1.1", label="canary p95"),
        check("T6", "baseline", current=promql('p95_seconds{track="all"}'),
              baseline=promql('p95_seconds{track="all"}', offset="30m"),
              expect="<= baseline * 1.5", label="p95 after deploy"),
        check("T6b", "baseline", current=promql('p95_seconds{track="all"}'),
              baseline=promql('p95_seconds{track="all"}', offset="30m"),
              expect="<= baseline", label="p95 after deploy"),
        check("N1", "baseline", current=sql("select 1"),
              baseline=sql("select max(total) from rollups"), expect="<= baseline"),
        check("N2", "baseline", current=sql("select 1"),
              baseline=promql('p95_seconds{track="gone"}'), expect="<= baseline"),
        check("N3", "baseline", current=sql("select 1"), baseline=promql("p95_seconds"),
              expect="<= baseline"),
        check("N4", "baseline", current=sql("select 'fast'"), baseline=sql("select 1"),
              expect="<= baseline"),
    ])
    assert run.result.ret == 1
    first = run.check("B1")
    assert first["outcome"] == "failed"
    assert first["message"] == "p95 current (0.31) <= baseline (0.25) * 1.1 = 0.275"
    assert first["observed"] == 0.31 and first["condition"] == "p95 current <= baseline * 1.1"
    assert first["evidence"]["seen"]["baseline"]["value"] == 0.25
    margin = run.check("B2")
    assert margin["outcome"] == "passed"
    assert margin["message"] == "p95 current (0.31) <= baseline (0.25) + 0.1 = 0.35"
    assert run.check("M7")["message"] == "canary p95 (0.31) <= baseline (0.25) * 1.1 = 0.275"
    after = run.check("T6")
    assert after["outcome"] == "passed", after["message"]
    assert after["evidence"]["asked"]["baseline"]["offset_s"] == 1800
    assert after["evidence"]["seen"]["baseline"]["value"] == 0.25
    assert run.check("T6b")["outcome"] == "failed"
    for ident, words in (("N1", "returned NULL"), ("N2", "no series"),
                         ("N3", "returned 3 series"), ("N4", '"fast", not a finite number')):
        record = run.check(ident)
        assert record["outcome"] == "error", record["message"]
        assert words in record["message"], record["message"]


def test_baseline_from_a_previous_runs_evidence(pytester, sqlite_url, tmp_path):
    targets = {"databases": {"main": {"url": sqlite_url}}}
    before = run_gate(pytester, targets, [
        check("P95", "sql", scalar="select 0.25", expect="< 1"),
        check("WORD", "sql", scalar="select 'ok'", expect="== ok"),
        check("BROKEN", "sql", scalar="select total from no_such_table", expect="== 1"),
    ])
    assert before.result.ret == 1 and before.document is not None
    evidence = tmp_path / "before.json"
    evidence.write_text(json.dumps(before.document))
    tampered = json.loads(evidence.read_text())
    tampered["checks"][0]["observed"] = 0.5
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))

    def against(ident: str, current: str, **baseline: Any) -> dict[str, Any]:
        return check(ident, "baseline", current=sql(current), expect="<= baseline * 1.1",
                     baseline={"evidence": str(evidence), "check": "P95", **baseline})

    run = run_gate(pytester, targets, [
        against("E1", "select 0.26"),
        against("E2", "select 0.31"),
        against("E3", "select 0.26", evidence=str(tmp_path / "tampered.json")),
        against("E4", "select 0.26", evidence=str(tmp_path / "missing.json")),
        against("E5", "select 0.26", check="NOPE"),
        against("E6", "select 0.26", check="WORD"),
        against("E7", "select 0.26", check="BROKEN"),
        against("E8", "select 0.26", environment="production"),
    ])
    assert run.result.ret == 1
    passed = run.check("E1")
    assert passed["outcome"] == "passed"
    assert passed["message"] == "current (0.26) <= baseline (0.25) * 1.1 = 0.275"
    assert passed["evidence"]["seen"]["baseline"]["run_id"] == before.document["run_id"]
    assert run.check("E2")["outcome"] == "failed"
    for ident, words in (("E3", "does not match its sha256"), ("E4", "cannot read"),
                         ("E5", "has no check 'NOPE'"), ("E6", '"ok", not a finite number'),
                         ("E7", "did not measure in that run (outcome error"),
                         ("E8", "not in 'production'")):
        record = run.check(ident)
        assert record["outcome"] == "error", (ident, record["message"])
        assert words in record["message"], (ident, record["message"])


def test_baseline_configuration_errors(pytester, sqlite_url):
    one = sql("select 1")
    run = run_gate(pytester, {"databases": {"main": {"url": sqlite_url}}}, [
        check("X1", "baseline", current=one, baseline=one, expect="<= baseline * x"),
        check("X2", "baseline", current=one, baseline=one, expect="< base"),
        check("X3", "baseline", current=one, baseline=one, expect="<= baseline * 0"),
        check("X4", "baseline", current=one, baseline={"evidence": "e.json"}, expect="<= baseline"),
        check("X5", "baseline", current=one, baseline={**one, "check": "P95"},
              expect="<= baseline"),
        check("X6", "baseline", current={**one, **promql("up")}, baseline=one,
              expect="<= baseline"),
    ])
    config_errors(run, ("checks[0] (X1)", "'x' is not a number"),
                  ("checks[1] (X2)", "is not a baseline condition: write 'OP baseline'"),
                  ("checks[2] (X3)", "the factor must be a finite number above 0"),
                  ("checks[3] (X4)", "needs 'check: ID'"),
                  ("checks[4] (X5)", "'check' and 'environment' go with 'evidence: PATH'"),
                  ("checks[5] (X6)", "give exactly one of http, sql, promql"))


# ---------------------------------------------------------------- freshness
def test_freshness_from_sqlite_http_and_prometheus(pytester, prom, sqlite_url, jobs_server):
    targets = {"http": {"jobs": {"base_url": jobs_server}},
               "databases": {"main": {"url": sqlite_url}}, "prometheus": {"url": prom}}

    def json_field(value: str) -> dict[str, Any]:
        return {"http": {"request": {"path": "/jobs/last"}, "value": value}}

    beat = "heartbeat age"
    run = run_gate(pytester, targets, [
        check("Q4", "freshness", source=sql("select datetime('now', '-5 seconds')"),
              max_age="60s", label=beat),
        check("Q4b", "freshness", source=sql("select datetime('now', '-312 seconds')"),
              max_age="60s", label=beat),
        check("D7", "freshness", source=sql("select date('now', '-1 day')"), max_age="48h",
              label="rollup age"),
        check("Q12", "freshness", source=json_field("last_success_ms"), max_age="30s"),
        check("Q12b", "freshness", source=json_field("epoch_text"), max_age="30s"),
        check("Q12c", "freshness", source=json_field("finished"), max_age="5m"),
        check("M3", "freshness", source=promql("max(job_last_success_timestamp_seconds)"),
              max_age="10m"),
        check("M3b", "freshness", source=promql("max(job_last_success_timestamp_seconds)"),
              max_age="60s"),
        check("F1", "freshness", source=sql("select datetime('now', '+1 hour')"),
              max_age="60s"),
        check("F2", "freshness", source=sql("select 'yesterday'"), max_age="60s"),
        check("F3", "freshness", source=sql("select max(bucket_date) from rollups"),
              max_age="60s"),
        check("F4", "freshness", source=json_field("never"), max_age="60s"),
    ])
    assert run.result.ret == 1
    fresh = run.check("Q4")
    assert fresh["outcome"] == "passed", fresh["message"]
    assert 4 <= fresh["observed"] <= 20
    stale = run.check("Q4b")
    assert stale["outcome"] == "failed"
    assert re.fullmatch(r"heartbeat age \(31\ds\) <= 60s", stale["message"]), stale["message"]
    assert stale["evidence"]["seen"]["timestamp"].endswith("Z")
    for ident in ("D7", "Q12", "Q12b", "M3"):
        assert run.check(ident)["outcome"] == "passed", run.check(ident)["message"]
    assert re.fullmatch(r"age \(40\ds\) <= 300s", run.check("Q12c")["message"])
    assert run.check("M3b")["outcome"] == "failed"
    for ident, words in (("F1", "in the future"), ("F2", '"yesterday" is neither an ISO-8601'),
                         ("F3", "returned NULL"), ("F4", "no value at 'never'")):
        record = run.check(ident)
        assert record["outcome"] == "error", (ident, record["message"])
        assert words in record["message"], (ident, record["message"])


def test_freshness_naive_postgres_timestamps_are_utc(pytester, pg_url, pg_admin, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # a naive timestamp read as local time is 5.5 h off
    pg_admin.execute("create table worker_heartbeats (worker text, beat_at timestamp, "
                     "seen_at timestamptz)")
    pg_admin.execute("insert into worker_heartbeats values ('w1', "
                     "(now() at time zone 'utc') - interval '20 seconds', "
                     "now() - interval '20 seconds')")
    run = run_gate(pytester, {"databases": {"main": {"url": pg_url}}}, [
        check("Q4", "freshness", source=sql("select max(beat_at) from worker_heartbeats"),
              max_age="60s", label="heartbeat age"),
        check("Q4tz", "freshness", source=sql("select max(seen_at) from worker_heartbeats"),
              max_age="60s", label="heartbeat age"),
        check("Q4old", "freshness",
              source=sql("select max(seen_at) - interval '2 hours' from worker_heartbeats"),
              max_age="60s", label="heartbeat age"),
    ])
    assert run.result.ret == 1
    naive = run.check("Q4")
    assert naive["outcome"] == "passed", naive["message"]
    assert 15 <= naive["observed"] <= 60
    assert run.check("Q4tz")["outcome"] == "passed"
    old = run.check("Q4old")
    assert old["outcome"] == "failed"
    assert re.fullmatch(r"heartbeat age \(2h00m = 72\d\ds\) <= 60s", old["message"])


# ---------------------------------------------------------------- alerts
def test_alerts_firing_pending_ignored_and_new(pytester, prom):
    firing = query(prom, 'ALERTS{alertname="DLQGrowing",alertstate="firing"}')
    assert firing
    (active,) = [a for a in _alerts(prom) if a["labels"]["alertname"] == "DLQGrowing"]
    started = datetime.fromisoformat(active["activeAt"]).timestamp()
    time.sleep(max(started + 1.5 - time.time(), 0))
    critical = {"severity": "critical"}
    run = run_gate(pytester, {"prometheus": {"url": prom}}, [
        check("M4", "alerts", match=critical),
        check("M4w", "alerts", match={"severity": "warning"}),
        check("M4i", "alerts", ignore=["DLQGrowing", "Watchdog"]),
        check("M4p", "alerts", state="pending", match={"severity": "ticket"}),
        check("M4n", "alerts", match=critical, new_since="1s"),
        check("M4h", "alerts", match=critical, new_since="1h"),
        check("M4x", "alerts", match=critical, ignore=["DLQGrowing"]),
    ])
    assert run.result.ret == 1
    fires = run.check("M4")
    assert fires["outcome"] == "failed"
    assert re.fullmatch(r'firing alerts\{severity="critical"\} \(1: DLQGrowing since '
                        r'\d\d:\d\d:\d\dZ\) == 0', fires["message"]), fires["message"]
    (alert,) = fires["evidence"]["seen"]["matching"]
    assert alert["labels"]["team"] == "payments" and alert["activeAt"] == active["activeAt"]
    assert "DLQGrowing" in fires["evidence"]["seen"]["rules"]["candidates"]
    quiet = run.check("M4w")
    assert quiet["outcome"] == "passed"
    assert quiet["message"] == 'firing alerts{severity="warning"} (0) == 0'
    assert run.check("M4i")["outcome"] == "passed"
    pending = run.check("M4p")
    assert pending["outcome"] == "failed" and "SlowBurn" in pending["message"]
    assert run.check("M4n")["outcome"] == "passed", run.check("M4n")["message"]
    assert run.check("M4h")["outcome"] == "failed"
    nothing = run.check("M4x")
    assert nothing["outcome"] == "error"
    assert "none of the 4 alerting rules loaded could raise an alert matching " \
           '{severity="critical"}' in nothing["message"]


@pytest.mark.parametrize("rules", [RECORDING_ONLY, None], ids=["recording-rules", "no-rules"])
def test_alerts_without_alerting_rules_is_an_error(pytester, prometheus, rules):
    url = prometheus(openmetrics({"dlq_depth": constant(10)}), rules=rules)
    run = run_gate(pytester, {"prometheus": {"url": url}}, [check("M4", "alerts")])
    assert run.result.ret == 1
    record = run.check("M4")
    assert record["outcome"] == "error"
    assert record["message"] == "no alerting rules loaded: cannot tell whether alerts fire"
    assert verify(run.document)


def test_alerts_unreachable_prometheus_is_an_error(pytester):
    run = run_gate(pytester, {"prometheus": {"url": f"http://127.0.0.1:{free_port()}",
                                             "timeout": "2s"}},
                   [check("M4", "alerts", match={"severity": "critical"})])
    record = run.check("M4")
    assert record["outcome"] == "error" and "could not reach Prometheus" in record["message"]


def _alerts(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=5) as response:
        return json.load(response)["data"]["alerts"]
