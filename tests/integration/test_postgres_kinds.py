"""``kind: postgres`` end to end through the plugin against a real PostgreSQL.

Every check passes and fails on the real condition it names: a second connection really holds
an advisory lock while idle in a transaction, a real session waits for an ACCESS EXCLUSIVE lock,
the database or the role is really made read-only, the migration tables of each tool really
exist. Each test writes an environment file, runs ``pytest checks --env FILE`` in a subprocess
and reads the run's evidence.json; it closes every connection it opened and verifies that none
is left in ``pg_stat_activity``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
#: Plugins of the suite's own tests that a gate run does not need.
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")
IDLE = 1.3  # seconds a session idles before the run (checks use 1s thresholds)


@dataclass
class Run:
    """One run of the catalog: pytest's result and the run's evidence.json."""

    result: pytest.RunResult
    document: dict[str, Any]

    def check(self, ident: str) -> dict[str, Any]:
        found = [c for c in self.document["checks"] if c["id"] == ident]
        assert len(found) == 1, f"{ident} not in {[c['id'] for c in self.document['checks']]}"
        return found[0]

    def outcome(self, ident: str) -> str:
        return self.check(ident)["outcome"]

    def seen(self, ident: str) -> dict[str, Any]:
        return self.check(ident)["evidence"]["seen"]


def write_env(pytester: pytest.Pytester, databases: dict[str, str],
              checks: list[dict[str, Any]]) -> Path:
    """An environment file with ``databases`` (name -> URL) and ``checks``."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    environment = {"name": "itest",
                   "targets": {"databases": {n: {"url": u} for n, u in databases.items()}},
                   "checks": checks}
    path = pytester.path / "itest.yaml"
    path.write_text(yaml.safe_dump(environment, sort_keys=False))
    return path


def run_env(pytester: pytest.Pytester, path: Path) -> tuple[pytest.RunResult, Path]:
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir", str(out),
                                           *QUIET)
    return result, out


def run_gate(pytester: pytest.Pytester, databases: dict[str, str] | str,
             checks: list[dict[str, Any]]) -> Run:
    """Run ``checks`` against ``databases`` (or one URL as ``main``) and read the evidence."""
    if isinstance(databases, str):
        databases = {"main": databases}
    result, out = run_env(pytester, write_env(pytester, databases, checks))
    runs = list(out.iterdir()) if out.is_dir() else []
    assert len(runs) == 1, f"no run folder:\n{result.stdout.str()}\n{result.stderr.str()}"
    return Run(result, json.loads((runs[0] / "evidence.json").read_text()))


def pg(ident: str, check: str, **options: Any) -> dict[str, Any]:
    """A ``kind: postgres`` check."""
    return {"id": ident, "title": f"{check} {ident}", "kind": "postgres", "check": check,
            **options}


def no_sessions_left(admin: psycopg.Connection) -> list[tuple[Any, ...]]:
    """Sessions of the test database other than ``admin`` once they had time to end."""
    deadline = time.monotonic() + 5
    while True:
        left = admin.execute("select pid, application_name, state from pg_stat_activity "
                             "where datname = current_database() and pid <> pg_backend_pid()"
                             ).fetchall()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def wait_for(admin: psycopg.Connection, query: str, timeout: float = 5.0) -> None:
    """Poll ``query`` (one boolean) until it is true."""
    deadline = time.monotonic() + timeout
    while not admin.execute(query).fetchone()[0]:
        assert time.monotonic() < deadline, f"never true: {query}"
        time.sleep(0.02)


@pytest.fixture
def login_role(postgres_server: Any) -> Iterator[str]:
    """A fresh login role with no privileges (roles are cluster-wide: dropped afterwards)."""
    name = f"opsgate_test_role_{secrets.token_hex(4)}"
    with postgres_server.connect() as admin:
        admin.execute(sql.SQL("create role {} login").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with postgres_server.connect() as admin:
            admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


# ---------------------------------------------------------------- S1, S3 and quiet defaults
def test_reachable_saturation_and_a_quiet_database(pytester, pg_url, pg_admin):
    run = run_gate(pytester, pg_url, [
        pg("S1", "reachable"),
        pg("S1-slow", "reachable", max_latency="0.01ms"),
        pg("S3", "connection_saturation"),
        pg("S3-full", "connection_saturation", max=0.0001),
        pg("S4", "idle_in_transaction"),
        pg("Q10", "advisory_locks"),
        pg("S6", "lock_waits"),
    ])
    assert run.result.ret == 1
    assert run.document["blocking"] == ["itest:S1-slow", "itest:S3-full"]
    for ident in ("S1", "S3", "S4", "Q10", "S6"):
        assert run.outcome(ident) == "passed", run.check(ident)
    assert run.check("S1")["observed"] < 1000
    slow = run.check("S1-slow")
    assert slow["outcome"] == "failed" and "latency_ms" in slow["message"]
    assert slow["message"].endswith("< 0.01")
    full = run.check("S3-full")
    assert full["outcome"] == "failed" and 0 < full["observed"] < 1
    row = run.seen("S3-full")["rows"][0]
    assert row["client_backends"] >= 1 and row["max_connections"] >= row["client_backends"]
    assert run.check("S4")["message"] == "sessions idle in transaction for over 1m (0) == 0"
    assert run.seen("S4")["backends_visible"] >= 1  # pg_admin at least, visible to a superuser
    assert no_sessions_left(pg_admin) == []


# ---------------------------------------------------------------- S4 and Q10
def test_idle_in_transaction_and_advisory_locks_of_idle_holders(pytester, pg_url, pg_database,
                                                                pg_admin):
    in_tx, idle = pg_database.connect(), pg_database.connect()
    in_tx_pid = in_tx.info.backend_pid
    in_tx.execute("begin")
    in_tx.execute("select pg_advisory_lock(42)")            # session lock, idle in transaction
    idle.execute("select pg_advisory_lock(7)")              # session lock, idle (no transaction)
    idle.execute("select pg_advisory_lock(-5, 9)")          # the two-integer form
    time.sleep(IDLE)
    run = run_gate(pytester, pg_url, [
        pg("S4", "idle_in_transaction", max_age="1s"),
        pg("S4-ok", "idle_in_transaction", max_age="1h"),
        pg("Q10", "advisory_locks", idle_for="1s", sample=2),
        pg("Q10-key", "advisory_locks", idle_for="1s", key=42),
        pg("Q10-pair", "advisory_locks", idle_for="1s", key=[-5, 9]),
        pg("Q10-tx", "advisory_locks", idle_for="1s", include_idle=False),
        pg("Q10-other", "advisory_locks", idle_for="1s", key=99),
        pg("Q10-young", "advisory_locks", idle_for="1h"),
    ])
    assert run.result.ret == 1
    assert sorted(run.document["blocking"]) == ["itest:Q10", "itest:Q10-key", "itest:Q10-pair",
                                                "itest:Q10-tx", "itest:S4"]
    for ident in ("S4-ok", "Q10-other", "Q10-young"):
        assert run.outcome(ident) == "passed", run.check(ident)

    idle_tx = run.check("S4")
    assert idle_tx["observed"] == 1
    assert idle_tx["message"] == "sessions idle in transaction for over 1s (1) == 0"
    (session,) = run.seen("S4")["rows"]
    assert session["pid"] == in_tx_pid and session["state"] == "idle in transaction"
    assert session["idle_seconds"] >= 1 and session["query"] == "select pg_advisory_lock(42)"

    every = run.check("Q10")
    assert every["observed"] == 3 and len(run.seen("Q10")["rows"]) == 2  # sample capped at 2
    assert run.seen("Q10")["total"] == 3
    (held,) = run.seen("Q10-key")["rows"]
    assert held["lock_id"] == 42 and held["pid"] == in_tx_pid
    assert held["state"] == "idle in transaction" and held["idle_seconds"] >= 1
    (pair,) = run.seen("Q10-pair")["rows"]
    assert pair["lock_id"] == [-5, 9] and pair["state"] == "idle"
    assert [r["lock_id"] for r in run.seen("Q10-tx")["rows"]] == [42]

    in_tx.close()
    idle.close()
    assert no_sessions_left(pg_admin) == []


# ---------------------------------------------------------------- S6
def test_lock_waits_name_the_waiting_and_the_blocking_sessions(pytester, pg_url, pg_database,
                                                              pg_admin):
    pg_admin.execute("create table t (n integer)")
    holder, waiter = pg_database.connect(), pg_database.connect()
    holder.execute("begin")
    holder.execute("lock table t in access exclusive mode")
    blocked = threading.Thread(target=lambda: waiter.execute("select count(*) from t"))
    blocked.start()
    try:
        wait_for(pg_admin, f"select wait_event_type = 'Lock' from pg_stat_activity "
                           f"where pid = {waiter.info.backend_pid}")
        time.sleep(IDLE)
        run = run_gate(pytester, pg_url, [
            pg("S6", "lock_waits", max_wait="1s"),
            pg("S6-ok", "lock_waits", max_wait="1h"),
        ])
    finally:
        holder.execute("rollback")
        blocked.join(timeout=10)
    assert not blocked.is_alive()
    assert run.result.ret == 1 and run.document["blocking"] == ["itest:S6"]
    assert run.outcome("S6-ok") == "passed"
    failed = run.check("S6")
    assert failed["message"] == "sessions waiting for a lock for over 1s (1) == 0"
    (waiting,) = run.seen("S6")["rows"]
    assert waiting["pid"] == waiter.info.backend_pid
    assert waiting["blocking_pids"] == [holder.info.backend_pid]
    assert waiting["blockers"].startswith(f"{holder.info.backend_pid} idle in transaction")
    assert waiting["waiting_seconds"] >= 1 and waiting["query"] == "select count(*) from t"
    holder.close()
    waiter.close()
    assert no_sessions_left(pg_admin) == []


# ---------------------------------------------------------------- S5
def test_writable_and_read_only_follow_role_and_database_settings(pytester, pg_url, pg_database,
                                                                  pg_admin):
    user, database = pg_database.server.user, pg_database.name
    pg_admin.execute(sql.SQL("alter role {} in database {} set default_transaction_read_only = on")
                     .format(sql.Identifier(user), sql.Identifier(database)))
    run = run_gate(pytester, pg_url, [
        pg("W-db", "writable"),
        pg("W-role", "writable", role=user),
        pg("R-db", "read_only"),
    ])
    assert run.outcome("W-db") == "passed", run.check("W-db")
    assert run.seen("W-db")["decided_by"] in ("server", "default")
    role = run.check("W-role")
    assert role["outcome"] == "failed" and role["message"] == 'mode ("read_only") == primary'
    assert run.seen("W-role")["decided_by"] == "role_in_database"
    assert run.check("R-db")["message"] == 'mode ("primary") in [replica, read_only]'

    pg_admin.execute(sql.SQL("alter role {} in database {} reset default_transaction_read_only")
                     .format(sql.Identifier(user), sql.Identifier(database)))
    pg_admin.execute(sql.SQL("alter database {} set default_transaction_read_only = on")
                     .format(sql.Identifier(database)))
    with pg_database.server.connect(database) as fresh, pytest.raises(
            psycopg.errors.ReadOnlySqlTransaction):
        fresh.execute("create table proof (n integer)")  # really read-only for new sessions
    run = run_gate(pytester, pg_url, [
        pg("W-db", "writable"),
        pg("R-db", "read_only"),
        pg("R-replica", "read_only", expect="replica"),
        pg("W-either", "writable", expect=["primary", "read_only"]),
    ])
    assert run.result.ret == 1
    assert sorted(run.document["blocking"]) == ["itest:R-replica", "itest:W-db"]
    assert run.check("W-db")["message"] == 'mode ("read_only") == primary'
    assert run.seen("W-db")["decided_by"] == "database"
    assert run.outcome("R-db") == "passed" and run.outcome("W-either") == "passed"
    assert run.check("R-replica")["message"] == 'mode ("read_only") == replica'
    assert no_sessions_left(pg_admin) == []


def test_an_unprivileged_role_errors_instead_of_passing_blind(pytester, pg_database, pg_admin,
                                                              login_role):
    url = f"postgresql+psycopg://{login_role}@127.0.0.1:5432/{pg_database.name}"
    idle = pg_database.connect()
    idle.execute("begin")
    idle.execute("select 1")
    time.sleep(IDLE)
    run = run_gate(pytester, url, [
        pg("S4", "idle_in_transaction", max_age="1s"),
        pg("W", "writable"),
        pg("W-blind", "writable", ignore_server_setting=True),
        pg("S3", "connection_saturation"),
    ])
    hidden = run.check("S4")
    assert hidden["outcome"] == "error", hidden
    assert "hidden from role" in hidden["message"] and "pg_monitor" in hidden["message"]
    blind = run.check("W")
    assert blind["outcome"] == "error" and "not visible" in blind["message"], blind
    assert run.outcome("W-blind") == "passed"
    assert "ignored" in run.seen("W-blind")["server_level"]
    assert run.outcome("S3") == "passed"
    assert run.seen("S3")["rows"][0]["hidden_backends"] >= 1
    idle.close()
    assert no_sessions_left(pg_admin) == []


# ---------------------------------------------------------------- S2
MIGRATIONS = """
create table alembic_version (version_num varchar(32) primary key);
insert into alembic_version values ('2024_11_01_abc');
create table flyway_schema_history (installed_rank integer primary key, version varchar(50),
  description varchar(200) not null, success boolean not null);
insert into flyway_schema_history values (1, '1', 'init', true), (2, '2', 'ledger', true),
  (3, null, 'views (repeatable)', true), (4, '3', 'broken', false);
create schema ok;
create table ok.flyway_schema_history (like flyway_schema_history);
insert into ok.flyway_schema_history select * from flyway_schema_history where success;
create table _prisma_migrations (id varchar(36) primary key, migration_name varchar(255) not null,
  finished_at timestamptz, rolled_back_at timestamptz);
insert into _prisma_migrations values ('a', '20241001000000_init', now(), null),
  ('b', '20241101120000_add_ledger', now(), null),
  ('c', '20241201000000_bad', null, now());
create table schema_info (version integer, applied_at timestamptz);
insert into schema_info values (7, now()), (6, now() - interval '1 day');
"""


def test_migration_version_for_each_tool(pytester, pg_url, pg_admin):
    pg_admin.execute(MIGRATIONS)
    run = run_gate(pytester, pg_url, [
        pg("M-alembic", "migration_version", expect="== 2024_11_01_abc"),
        pg("M-alembic-old", "migration_version", expect="== 2024_12_01_def"),
        pg("M-flyway", "migration_version", tool="flyway", table="ok.flyway_schema_history",
           expect="== 2"),
        pg("M-flyway-failed", "migration_version", tool="flyway", expect="== 2"),
        pg("M-prisma", "migration_version", tool="prisma", expect="== 20241101120000_add_ledger"),
        pg("M-prisma-rolled-back", "migration_version", tool="prisma",
           expect="== 20241201000000_bad"),
        pg("M-custom", "migration_version", tool="custom", table="schema_info", column="version",
           order_by="applied_at", expect=">= 7"),
        pg("M-missing", "migration_version", table="no_such_table", expect="exists"),
    ])
    assert run.result.ret == 1
    for ident in ("M-alembic", "M-flyway", "M-prisma", "M-custom"):
        assert run.outcome(ident) == "passed", run.check(ident)
    assert run.check("M-alembic")["message"] == \
        'alembic_version.version_num ("2024_11_01_abc") == 2024_11_01_abc'
    assert run.check("M-alembic-old")["outcome"] == "failed"
    flyway = run.check("M-flyway-failed")
    assert flyway["outcome"] == "failed" and flyway["message"] == "failed migrations (1) == 0"
    prisma = run.check("M-prisma-rolled-back")
    assert prisma["outcome"] == "failed" and '("20241101120000_add_ledger")' in prisma["message"]
    missing = run.check("M-missing")
    assert missing["outcome"] == "error" and "no_such_table" in missing["message"]
    assert no_sessions_left(pg_admin) == []


# ---------------------------------------------------------------- configuration
def test_bad_postgres_checks_are_configuration_errors_with_lines(pytester, pg_url):
    path = write_env(pytester, {"main": pg_url}, [
        pg("C1", "reachable", max_age="1s"),
        pg("C2", "migration_version", table="alembic version", expect="== 1"),
        pg("C3", "writable", expect="secondary"),
        pg("C4", "advisory_locks", key=[1, 2, 3]),
        pg("C5", "migration_version", tool="custom", expect="== 1"),
        pg("C6", "uptime"),
    ])
    result, _ = run_env(pytester, path)
    assert result.ret == 4
    errors = result.stderr.str() + result.stdout.str()
    for pattern in (r"itest.yaml:\d+: checks\[0\] \(C1\).*'max_age' does not apply to check "
                    r"reachable",
                    r"itest.yaml:\d+: checks\[1\] \(C2\)\.table: .*'alembic version' is not a "
                    r"plain SQL identifier",
                    r"itest.yaml:\d+: checks\[2\] \(C3\).*'secondary' is not a mode",
                    r"itest.yaml:\d+: checks\[3\] \(C4\).*give one bigint",
                    r"itest.yaml:\d+: checks\[4\] \(C5\).*tool custom needs 'table' and 'column'",
                    r"itest.yaml:\d+: checks\[5\] \(C6\)\.check: "):
        assert re.search(pattern, errors), (pattern, errors)
