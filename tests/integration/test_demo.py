"""The demo target: its endpoints and faults, and its gate end to end.

The endpoint tests talk HTTP to a demo in this process. The gate tests run the real demo
gate (demo, Prometheus over backfilled history, the catalog as a pytest child) once per
fault and read the run's evidence.json: the healthy demo PASSes; each fault BLOCKs with
exactly the checks ``faults.SYMPTOMS`` names red (measured, ``failed``) and every other
check passed.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import prometheus_client
import pytest

from opsgate.config.loader import load_environment
from opsgate.demo import faults as fault_registry
from opsgate.demo.cli import main
from opsgate.demo.context import SECRET_HEADER
from opsgate.demo.database import DemoDatabaseError
from opsgate.demo.envfile import render
from opsgate.demo.history import openmetrics
from opsgate.demo.seed import IN_FLIGHT_BODY, IN_FLIGHT_KEY
from opsgate.demo.server import DemoServer
from tests.support.demo import REPO, SECRET, GateSpec, run_demo_gate, run_demo_gates

DEMO_ENV = REPO / "fixtures" / "environments" / "demo.yaml"
JSON = {"Content-Type": "application/json"}


@functools.cache
def _checks(checklist: str) -> frozenset[str]:
    environment = load_environment(DEMO_ENV, {"DEMO_OPS_SECRET": SECRET}).environment
    return frozenset(check.id for check in environment.checks if checklist in check.checklists)


CORE_CHECKS = _checks("demo-core")
DEMO_CHECKS = _checks("demo")


def client(server: DemoServer, secret: str | None = SECRET) -> httpx.Client:
    headers = {SECRET_HEADER: secret} if secret else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=10)


# ---------------------------------------------------------------- the fault registry and CLI
def test_every_fault_is_described_and_names_checks_of_the_demo_gate():
    assert fault_registry.FAULTS.keys() == fault_registry.SYMPTOMS.keys()
    for name, checks in fault_registry.SYMPTOMS.items():
        assert checks, name
        assert checks <= DEMO_CHECKS | _checks("postgres"), (name, checks - DEMO_CHECKS)
    assert CORE_CHECKS <= DEMO_CHECKS


def test_cli_lists_faults(capsys):
    assert main(["faults"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in fault_registry.FAULTS)
    assert main(["gate", "--fault", "list"]) == 0  # what `make demo FAULT=list` runs
    assert "ledger_drift" in capsys.readouterr().out


def test_cli_refuses_an_unknown_fault_naming_the_known_ones(capsys):
    assert main(["gate", "--fault", "no_such_fault"]) == 2
    error = capsys.readouterr().err
    assert "unknown fault: no_such_fault" in error and "dlq_growing" in error


def test_postgres_only_fault_needs_postgres(capsys):
    assert main(["serve", "--fault", "stuck_lock"]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


def test_gate_outside_the_repository_says_where_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gate"]) == 2
    assert "no checks/ folder" in capsys.readouterr().err


# ---------------------------------------------------------------- endpoints
def test_health_and_ops_status(demo_server):
    server = demo_server()
    with client(server, secret=None) as http:
        assert http.get("/health").json() == {"status": "ok", "database": "ok"}
        status = http.get("/api/ops/status").json()
        assert http.get("/ops/dashboard").status_code == 200
    assert status["ready_ok"] is True and status["db_ok"] is True
    assert status["worker_running"] is True and status["heartbeat_age_s"] < 5
    assert set(status["queue_depth"]) == {"queued", "running"}
    assert status["webhook_failed_last_hour"] == 0 and status["jobs_failed_last_hour"] == 0
    assert status["dead_letters_last_24h"] == 3


def test_internal_endpoints_fail_closed(demo_server):
    server = demo_server()
    with client(server, secret=None) as anonymous:
        assert anonymous.get("/internal/outbox/dlq").status_code == 401
        assert anonymous.get("/internal/outbox/dlq",
                             headers={SECRET_HEADER: "wrong"}).status_code == 403
        assert anonymous.post("/internal/outbox/replay", json={"eventId": "evt_dl_0002"}
                              ).status_code == 401
    with client(server) as http:
        dlq = http.get("/internal/outbox/dlq", params={"limit": "1"}).json()
    assert dlq["count"] == 2 and len(dlq["items"]) == 1


def test_open_internal_fault_lets_a_request_without_the_secret_in(demo_server):
    with client(demo_server(faults=("open_internal",)), secret=None) as anonymous:
        assert anonymous.get("/internal/outbox/dlq").status_code == 200
        assert anonymous.get("/internal/outbox/dlq",
                             headers={SECRET_HEADER: "wrong"}).status_code == 403


def test_replay_is_idempotent(demo_server):
    with client(demo_server()) as http:
        answers = [http.post("/internal/outbox/replay", json={"eventId": "evt_dl_0002"}).json()
                   for _ in range(2)]
        assert http.get("/internal/outbox/dlq").json()["count"] == 1
        missing = http.post("/internal/outbox/replay", json={"eventId": "evt_nope"})
    assert [a["effects"] for a in answers] == [1, 1]
    assert [a["applied"] for a in answers] == [True, False]
    assert missing.status_code == 404


def test_a_job_runs_to_success_within_a_second(demo_server):
    with client(demo_server()) as http:
        job = http.post("/api/jobs", json={"kind": "smoke"})
        assert job.status_code == 201 and job.json()["status"] in ("queued", "running")
        deadline, seen = time.monotonic() + 2, []
        while time.monotonic() < deadline:
            seen.append(http.get(f"/api/jobs/{job.json()['id']}").json()["status"])
            if seen[-1] == "succeeded":
                break
            time.sleep(0.05)
    assert seen[-1] == "succeeded", seen
    assert time.monotonic() - (deadline - 2) < 1.5


def test_login_sets_an_httponly_secure_refresh_cookie(demo_server):
    with client(demo_server(), secret=None) as http:
        refused = http.post("/auth/login", json={"username": "smoke", "password": "nope"})
        answer = http.post("/auth/login", json={"username": "smoke", "password": SECRET})
    assert refused.status_code == 401
    assert answer.status_code == 200 and len(answer.json()["session"]) >= 16
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("refresh_token=") and "HttpOnly" in cookie and "Secure" in cookie


def test_payments_honour_idempotency_keys(demo_server):
    body = {"amount": 1000, "currency": "BRL", "customer": "t"}
    with client(demo_server(), secret=None) as http:
        first = http.post("/api/payments", json=body, headers={"Idempotency-Key": "k-1"})
        again = http.post("/api/payments", json=body, headers={"Idempotency-Key": "k-1"})
        other = http.post("/api/payments", json={**body, "amount": 1001},
                          headers={"Idempotency-Key": "k-1"})
        seeded = http.post("/api/payments", json=IN_FLIGHT_BODY,
                           headers={"Idempotency-Key": IN_FLIGHT_KEY})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert seeded.status_code == 409


def test_a_key_still_in_flight_gets_409(demo_server):
    server = demo_server()
    slow = {"amount": 700, "currency": "BRL", "customer": "t", "delay_ms": 800}
    answers: list[int] = []

    def pay() -> None:
        with client(server, secret=None) as http:
            answers.append(http.post("/api/payments", json=slow,
                                     headers={"Idempotency-Key": "k-slow"}).status_code)

    first = threading.Thread(target=pay)
    first.start()
    time.sleep(0.3)
    pay()
    first.join()
    assert sorted(answers) == [200, 409]


def test_pos_canary_and_missing_tenant(demo_server):
    with client(demo_server(), secret=None) as http:
        blocked = http.post("/api/pos/authorize", json={"tenant": "condo-other"})
        allowed = http.post("/api/pos/authorize", json={"tenant": "condo-pilot-01"})
        no_tenant = http.post("/api/pos/authorize", json={})
    assert blocked.status_code == 403 and blocked.json()["error"] == "canary_not_allowed"
    assert allowed.status_code == 200 and allowed.json()["authorized"] is True
    assert no_tenant.status_code == 400 and no_tenant.json()["error"] == "tenant_required"


def test_metrics_use_their_own_registry_and_match_the_history(demo_server):
    server = demo_server()
    with client(server, secret=None) as http:
        http.get("/health")
        exposed = http.get("/metrics").text
    history = openmetrics(frozenset(), "127.0.0.1:1", time.time())
    assert _families(history) <= _families(exposed)
    assert 'http_requests_total{method="GET",route="/health",status="200"} 1.0' in exposed
    assert "http_request_duration_seconds" not in {
        metric.name for metric in prometheus_client.REGISTRY.collect()}


def _families(text: str) -> set[str]:
    return {line.split()[2].removesuffix("_total") for line in text.splitlines()
            if line.startswith("# TYPE")}


def test_the_demo_refuses_a_database_it_did_not_create(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "theirs.sqlite") as conn:
        conn.execute("create table users (id integer primary key)")
    with pytest.raises(DemoDatabaseError, match="tables the demo did not create"):
        DemoServer(port=0, db_url=f"sqlite:///{tmp_path / 'theirs.sqlite'}").start()


def test_rendered_environment_names_the_run_and_hides_only_the_password(tmp_path):
    target = tmp_path / "demo.yaml"
    variables = render(DEMO_ENV, target, api_url="http://127.0.0.1:1234",
                       prometheus_url="http://127.0.0.1:5678",
                       db_url="postgresql+psycopg://ops:p%40ss@127.0.0.1:5432/demo")
    assert variables == {"DEMO_DB_PASSWORD": "p%40ss"}
    loaded = load_environment(target, {"DEMO_OPS_SECRET": SECRET, **variables}).environment
    assert loaded.targets.http["api"].base_url == "http://127.0.0.1:1234"
    assert loaded.targets.prometheus.url == "http://127.0.0.1:5678"
    assert loaded.targets.databases["main"].url.endswith("ops:p%40ss@127.0.0.1:5432/demo")
    postgres_only = {c.id for c in loaded.checks if "postgres" in c.checklists}
    assert postgres_only and all("demo-core" in c.checklists for c in loaded.checks
                                 if c.id in postgres_only)


# ---------------------------------------------------------------- the gate, end to end
def _spec(fault: str) -> GateSpec:
    """demo-core when the fault shows there, else the full gate with Prometheus."""
    symptoms = fault_registry.SYMPTOMS[fault]
    return GateSpec((fault,), prometheus=not symptoms <= CORE_CHECKS)


SQLITE_FAULTS = sorted(set(fault_registry.FAULTS) - fault_registry.POSTGRES_ONLY)
SPECS = {"healthy-core": GateSpec(), "healthy-demo": GateSpec(prometheus=True),
         **{fault: _spec(fault) for fault in SQLITE_FAULTS}}


@pytest.fixture(scope="module")
def gates(tmp_path_factory):
    """Every SQLite gate of this module, run once, side by side."""
    return run_demo_gates(SPECS, tmp_path_factory.mktemp("gates"))


def assert_passes(run, checks: set[str]) -> None:
    assert run.exit_code == 0, run.explain()
    assert run.evidence["verdict"] == "PASS", run.explain()
    assert set(run.checks) == checks and not run.red, run.explain()
    assert not run.files_showing(SECRET), "the ops secret leaked"


def assert_blocked_by(run, fault: str) -> None:
    expected = fault_registry.SYMPTOMS[fault] & set(run.checks)
    assert expected, f"{fault} shows in no check of this run:\n{run.explain()}"
    assert run.exit_code == 1 and run.evidence["verdict"] == "BLOCKED", run.explain()
    assert run.red == expected, run.explain()
    assert all(run.outcomes[ident] == "failed" for ident in expected), run.explain()


def test_healthy_demo_passes_demo_core_on_sqlite(gates):
    assert_passes(gates["healthy-core"], CORE_CHECKS)


@pytest.mark.prometheus
def test_healthy_demo_passes_the_demo_gate_with_prometheus(gates):
    assert_passes(gates["healthy-demo"], DEMO_CHECKS)


@pytest.mark.parametrize("fault", SQLITE_FAULTS)
def test_each_fault_blocks_with_exactly_its_checks(gates, fault):
    assert_blocked_by(gates[fault], fault)


@pytest.mark.postgres
def test_healthy_demo_passes_demo_core_on_postgres(pg_url, tmp_path):
    run = run_demo_gate(GateSpec(db_url=pg_url), tmp_path)
    assert_passes(run, CORE_CHECKS | _checks("postgres"))


@pytest.mark.postgres
@pytest.mark.prometheus
def test_stuck_lock_on_postgres_blocks_with_exactly_its_checks(pg_url, tmp_path):
    run = run_demo_gate(GateSpec(("stuck_lock",), prometheus=True, db_url=pg_url), tmp_path)
    assert_blocked_by(run, "stuck_lock")
    assert set(run.checks) == DEMO_CHECKS | _checks("postgres")


def test_opsgate_demo_gate_without_prometheus_runs_demo_core(tmp_path):
    """``make demo`` on a machine without Prometheus: one line saying so, then demo-core."""
    for folder in ("checks", "fixtures"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    executable = Path(sys.executable).parent / "opsgate-demo"
    environment = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([str(executable), "gate", "--", "-p", "no:hypothesispytest"],
                          cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "prometheus/promtool not found: running the demo-core checklist" in output
    assert "opsgate verdict: PASS" in output and "checklist demo-core" in output
    assert list((tmp_path / "reports").glob("*-demo-demo-core/evidence.json")), output
    assert not list((tmp_path / ".opsgate-demo" / "runs").glob("*/prometheus"))
