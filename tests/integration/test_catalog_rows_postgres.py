"""Catalog rows S1, S3, S5 and D4 on real PostgreSQL servers: pass healthy, fail for real.

Three throwaway clusters (``tests/support/pg_cluster.py``): ``primary`` (max_connections 20,
two ledger databases, the application role ``mvp_app``), ``replica`` (a streaming standby of
it: ``pg_is_in_recovery()`` is true) and ``busy`` (max_connections 20, 16 of them held open by
this module). One run measures the example environments' checks (``example_check``) in four
environments: ``primary`` (healthy ledger), ``orphans`` (a transaction without ledger entries),
``replica`` and ``busy``. A refused connection is shown both as the probe's error and as the
gate stopping before any check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opsgate.config.loader import load_environment
from opsgate.errors import ProbeError
from opsgate.runner import CheckCase, ProbeRunner
from tests.support.catalog import Run, example_check, run_catalog, write_environment
from tests.support.pg_cluster import wait_until
from tests.support.prometheus import free_port

pytestmark = pytest.mark.postgres

PVM, OB = "mvp-backend.example", "orya-obraflow.example"
HELD = 16  # of max_connections 20: with opsgate's own session, above the 0.8 of S3
LEDGER = """
create table transactions (id bigint primary key, kind text not null);
create table ledger_entries (id bigint primary key, transaction_id bigint not null,
                             account_id integer not null, amount bigint not null);
insert into transactions select n, 'transfer' from generate_series(1, 3) n;
insert into ledger_entries select 2 * n + side, n, side + 1, case side when 0 then -100 else 100
  end from generate_series(1, 3) n, generate_series(0, 1) side;
"""
D4 = ("D4-transactions-without-entries", "D4-entries-without-transaction")
READ_ONLY = {"id": "S5-not-primary", "title": "The server does not take writes (read_only form)",
             "kind": "postgres", "check": "read_only"}


def s5_checks() -> list[dict[str, Any]]:
    """S5 three ways: the example's writable check, demo.yaml's SQL form, the read_only form."""
    return [example_check(PVM, "S5-primary"), example_check("demo", "S5", checklists=None),
            READ_ONLY]


@pytest.fixture(scope="module")
def clusters(pg_clusters) -> Iterator[dict[str, Any]]:
    """The three clusters, set up, with ``HELD`` connections open on ``busy``."""
    primary = pg_clusters(max_connections=20)
    with primary.connect() as admin:
        admin.execute("create role mvp_app login")
        for name in ("ledger_ok", "ledger_orphans"):
            admin.execute(f"create database {name}")
    for name, extra in (("ledger_ok", ""), ("ledger_orphans", "insert into transactions "
                                            "values (4, 'refund');")):
        with primary.connect(name) as connection:
            connection.execute(LEDGER + extra)
    with primary.connect() as admin:
        lsn = admin.execute("select pg_current_wal_lsn()::text").fetchone()[0]
    replica = pg_clusters(standby_of=primary)
    wait_until(replica, f"select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
    busy = pg_clusters(max_connections=20)
    held = [busy.connect() for _ in range(HELD)]
    try:
        yield {"primary": primary, "replica": replica, "busy": busy}
    finally:
        for connection in held:
            connection.close()


def db(url: str) -> dict[str, Any]:
    return {"databases": {"main": {"url": url, "statement_timeout": "5s"}}}


@pytest.fixture(scope="module")
def run(clusters, tmp_path_factory) -> Run:
    """One run of the four environments."""
    folder = tmp_path_factory.mktemp("rows-postgres")
    primary, replica, busy = clusters["primary"], clusters["replica"], clusters["busy"]
    reachable = example_check(PVM, "S1-db-reachable")
    saturation = example_check(OB, "S3-connection-saturation")
    ledger = [example_check(PVM, ident) for ident in D4]
    environments = [
        write_environment(folder, "primary", db(primary.url("ledger_ok")),
                          [reachable, saturation, *s5_checks(), *ledger]),
        write_environment(folder, "orphans", db(primary.url("ledger_orphans")), ledger),
        write_environment(folder, "replica", db(replica.url("ledger_ok")),
                          [reachable, *s5_checks()]),
        write_environment(folder, "busy", db(busy.url()), [reachable, saturation]),
    ]
    return run_catalog(folder, environments)


def test_healthy_primary_passes_every_check(run):
    assert run.result.ret == 1, run.explain()  # orphans, replica and busy block
    assert run.outcomes("primary") == {
        "S1-db-reachable": "passed", "S3-connection-saturation": "passed",
        "S5-primary": "passed", "S5": "passed", "S5-not-primary": "failed",
        **dict.fromkeys(D4, "passed")}, run.explain()
    assert run.seen("S5-primary", "primary")["mode"] == "primary"


def test_s5_a_real_replica_is_not_writable(run, clusters):
    with clusters["replica"].connect() as replica:
        assert replica.execute("select pg_is_in_recovery()").fetchone()[0] is True
        assert replica.execute("select status from pg_stat_wal_receiver").fetchone() == (
            "streaming",)
    assert run.outcomes("replica") == {"S1-db-reachable": "passed", "S5-primary": "failed",
                                       "S5": "failed", "S5-not-primary": "passed"}
    writable = run.check("S5-primary", "replica")
    assert writable["message"] == 'mode ("replica") == primary'
    assert run.seen("S5-primary", "replica")["decided_by"] == "pg_is_in_recovery()"
    assert run.check("S5", "replica")["observed"] is True


def test_s3_a_server_near_max_connections_fails(run, clusters):
    busy = run.check("S3-connection-saturation", "busy")
    assert busy["outcome"] == "failed", busy["message"]
    (row,) = run.seen("S3-connection-saturation", "busy")["rows"]
    assert row["max_connections"] == 20 and row["client_backends"] >= HELD
    assert busy["observed"] >= 0.8
    quiet = run.check("S3-connection-saturation", "primary")
    assert quiet["outcome"] == "passed" and quiet["observed"] < 0.5
    assert run.outcome("S1-db-reachable", "busy") == "passed"  # saturated, yet answering


def test_d4_a_transaction_without_entries_fails(run):
    orphans = run.check("D4-transactions-without-entries", "orphans")
    assert orphans["outcome"] == "failed", orphans["message"]
    assert orphans["observed"] == 1
    assert [row["id"] for row in run.seen("D4-transactions-without-entries", "orphans")["rows"]
            ] == [4]
    # the other direction is a different rule: every entry of that database has its transaction
    assert run.outcome("D4-entries-without-transaction", "orphans") == "passed"


def test_s1_a_refused_connection_is_an_error_never_a_pass(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    path = write_environment(tmp_path, "refused", db(url), [example_check(PVM, "S1-db-reachable")])
    loaded = load_environment(path, {})
    runner = ProbeRunner("refused")
    try:
        with pytest.raises(ProbeError) as refused:
            runner.observe(CheckCase(loaded, loaded.environment.checks[0]))
    finally:
        runner.close()
    assert refused.value.reason == "connection" and "refused" in str(refused.value).lower()
    gate = run_catalog(tmp_path, [path])  # through the plugin: stopped before any check
    assert gate.result.ret == pytest.ExitCode.USAGE_ERROR, gate.explain()
    assert gate.document is not None and gate.document["verdict"] == "INCOMPLETE"
    assert gate.document["checks"] == []
    (problem,) = gate.document["preflight"]["problems"]
    assert "database main: could not ask the database" in problem
    assert "connection refused" in problem.lower()
