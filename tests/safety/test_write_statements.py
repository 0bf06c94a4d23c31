"""Guarantee 1, databases are not written to: configured writes never reach PostgreSQL, and a
write hidden where the SQL check cannot see it meets a read-only session.

A real PostgreSQL database (``pg_url`` / ``pg_admin``) holds ``accounts``, ``ledger`` and the
sequence ``order_seq``. Fifty write or side-effect statements (DML, DDL, ``nextval``, switching
read-only mode off, advisory locks, signalling other sessions, data-modifying WITH, SELECT INTO,
row locks, COPY, DO, CALL, EXPLAIN ANALYZE, large objects, dblink, SQL run from a string, two
statements) configured as ``kind: sql`` checks are refused before anything is sent: exit 4, one
message per check, and afterwards the rows, the sequence, the locks, the schema, the large
objects, the session counter and the session the statements meant to kill are all unchanged.

What the SQL check cannot see (a function) is stopped by the read-only session when it writes.
An advisory lock taken inside a function is not: PostgreSQL allows ``pg_advisory_lock`` in a
read-only transaction (NOTES.md), and only the role can refuse it (no EXECUTE on such
functions). The last tests show what happens and hold opsgate to releasing such a lock when the
statement ends rather than keeping it on a pooled connection for the rest of the run.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from pglast import parse_sql

REPO = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")

WRITES = [
    # data
    "insert into accounts (id, balance) values (99, 0)",
    "insert into accounts (id, balance) values (1, 0) on conflict (id) do update set balance = 0",
    "update accounts set balance = 0",
    "delete from ledger",
    "merge into accounts a using (select 1 as id) s on a.id = s.id "
    "when matched then update set balance = 0",
    "truncate ledger",
    "delete from ledger where id in (select id from ledger) returning id",
    # schema
    "create table evil (id integer)",
    "drop table ledger",
    "alter table accounts add column evil integer",
    "create index evil_idx on accounts (balance)",
    "create view evil_view as select 1 as one",
    "create table evil_copy as select * from accounts",
    "create materialized view evil_mv as select 1 as one",
    "alter sequence order_seq restart with 1",
    "drop sequence order_seq",
    "comment on table accounts is 'evil'",
    "grant all on accounts to public",
    "create function evil() returns integer language sql as $$ select 1 $$",
    "vacuum accounts",
    "analyze accounts",
    "lock table accounts in access exclusive mode",
    # sequences
    "select nextval('order_seq')",
    "select pg_catalog.NEXTVAL('order_seq') as n",
    "select setval('order_seq', 1000)",
    # read-only mode switched off
    "set transaction read write",
    "set default_transaction_read_only = off",
    "set session characteristics as transaction read write",
    "select set_config('default_transaction_read_only', 'off', false)",
    "begin read write",
    # locks and other sessions
    "select pg_advisory_lock(4242)",
    "select pg_try_advisory_xact_lock(4242)",
    "select pg_terminate_backend({victim})",
    "select pg_cancel_backend({victim})",
    # writes hidden in reads
    "with moved as (delete from ledger returning *) select count(*) from moved",
    "with bumped as (update accounts set balance = balance + 1 returning id) "
    "select count(*) from bumped",
    "select * into evil_into from accounts",
    "select id from accounts for update",
    "select id from accounts where balance > 0 for no key update skip locked",
    "select count(*) from (select id from accounts for share) as locked",
    # bulk, procedural, server side
    "copy accounts from '/tmp/opsgate-accounts.csv'",
    "copy (select 1) to program 'touch /tmp/opsgate-evil'",
    "do $$ begin delete from ledger; end $$",
    "call evil_procedure()",
    "explain analyze delete from ledger",
    "explain (analyze, format json) update accounts set balance = 0",
    "select lo_import('/etc/hostname')",
    "select dblink_exec('dbname=postgres', 'delete from accounts')",
    "select query_to_xml('delete from ledger returning id', true, false, '')",
    "select 1; delete from ledger",
]


# ---------------------------------------------------------------- the database and the run
@pytest.fixture
def bank(pg_admin: psycopg.Connection) -> psycopg.Connection:
    """``accounts`` (3 rows), ``ledger`` (5 rows) and ``order_seq`` (never called)."""
    pg_admin.execute("create table accounts (id integer primary key, balance integer)")
    pg_admin.execute("insert into accounts values (1, 100), (2, 50), (3, 0)")
    pg_admin.execute("create table ledger (id serial primary key, account_id integer, "
                     "amount integer)")
    pg_admin.execute("insert into ledger (account_id, amount) "
                     "values (1, 60), (1, 40), (2, 50), (3, 10), (3, -10)")
    pg_admin.execute("create sequence order_seq")
    return pg_admin


def state(admin: psycopg.Connection, database: str) -> dict[str, Any]:
    """Everything the statements could have changed, as the administrator sees it."""
    admin.execute("select pg_stat_clear_snapshot()")
    query = {
        "accounts": "select count(*), sum(balance) from accounts",
        "ledger": "select count(*), sum(amount) from ledger",
        "sequence": "select last_value, is_called from order_seq",
        "advisory locks": "select count(*) from pg_locks where locktype = 'advisory'",
        "relations": "select count(*) from pg_class c join pg_namespace n "
                     "on n.oid = c.relnamespace where n.nspname = 'public'",
        "functions": "select count(*) from pg_proc p join pg_namespace n "
                     "on n.oid = p.pronamespace where n.nspname = 'public'",
        "large objects": "select count(*) from pg_largeobject_metadata",
        "columns": "select count(*) from information_schema.columns "
                   "where table_name = 'accounts'",
    }
    facts = {name: admin.execute(sql).fetchone() for name, sql in query.items()}
    facts["sessions"] = admin.execute("select sessions from pg_stat_database "
                                      "where datname = %s", (database,)).fetchone()
    return facts


def run_gate(pytester: pytest.Pytester, url: str, checks: list[dict[str, Any]],
             *args: str) -> tuple[pytest.RunResult, dict[str, Any] | None, Path]:
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    path = pytester.path / "writes.yaml"
    environment = {"name": "writes", "targets": {"databases": {"main": {"url": url}}},
                   "checks": checks}
    path.write_text(yaml.safe_dump(environment, sort_keys=False, width=200))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir",
                                           str(out), *QUIET, *args, timeout=120)
    found = sorted(out.glob("*/evidence.json")) if out.is_dir() else []
    return result, json.loads(found[0].read_text()) if len(found) == 1 else None, out


def write_checks(victim: int) -> list[dict[str, Any]]:
    """The 50 statements as sql checks, alternately as a scalar and as a violations query."""
    checks = []
    for index, statement in enumerate(WRITES):
        sql = statement.format(victim=victim)
        query = {"scalar": sql, "expect": "exists"} if index % 2 == 0 else {"violations": sql}
        checks.append({"id": f"W{index:02d}", "title": f"write {index}", "kind": "sql",
                       **query})
    return checks


# ---------------------------------------------------------------- refused before sending
def test_fifty_writes_are_refused_before_anything_is_sent(pytester, pg_url, pg_database, bank):
    victim = pg_database.connect()
    (victim_pid,) = victim.execute("select pg_backend_pid()").fetchone()
    checks = write_checks(victim_pid)
    assert len(checks) == 50
    for check in checks:  # each is valid PostgreSQL: refused as a write, not as a typo
        parse_sql(check.get("scalar") or check["violations"])
    before = state(bank, pg_database.name)

    result, document, out = run_gate(pytester, pg_url, checks)

    errors = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + errors
    assert "Traceback" not in errors + result.stdout.str()
    assert document is None and not out.exists(), "a run started"
    lines = [line.strip() for line in errors.splitlines() if "writes.yaml:" in line]
    assert len(lines) == 50, f"{len(lines)} problem lines for 50 writes:\n{errors}"
    for index, check in enumerate(checks):
        field = "scalar" if "scalar" in check else "violations"
        key = f"checks[{index}] ({check['id']}).{field}: "
        (line,) = [line for line in lines if key in line]
        assert re.search(r"writes\.yaml:\d+: ", line), line
        assert "does not parse" not in line, line
        assert re.search(r"not allowed|holds 2 statements", line), line
    after = state(bank, pg_database.name)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert after["sequence"] == (1, False)
    assert victim.execute("select 1").fetchone() == (1,), "the victim session was touched"
    assert not Path("/tmp/opsgate-evil").exists()


def test_every_sql_entry_point_is_guarded(pytester, pg_url, pg_database, bank):
    """SQL written in other kinds (sources, invariant ``where``) meets the same guard."""
    checks = [
        {"id": "F1", "title": "fresh", "kind": "freshness", "max_age": "1h",
         "source": {"sql": {"query": "select now() from accounts for update"}}},
        {"id": "W1", "title": "window", "kind": "window", "window": "1s", "interval": "500ms",
         "expect": "max < 5", "sample": {"sql": {"query": "select nextval('order_seq')"}}},
        {"id": "B1", "title": "baseline", "kind": "baseline", "expect": "<= baseline",
         "current": {"sql": {"query": "select pg_advisory_lock(1)"}},
         "baseline": {"sql": {"query": "select 1"}}},
        {"id": "I1", "title": "count", "kind": "invariant", "rule": "count",
         "table": "accounts", "where": "pg_terminate_backend(1) and balance > 0",
         "expect": "== 0"},
    ]
    before = state(bank, pg_database.name)
    result, document, _ = run_gate(pytester, pg_url, checks)
    errors = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + errors
    assert document is None
    for key in ("checks[0] (F1).source.sql.query", "checks[1] (W1).sample.sql.query",
                "checks[2] (B1).current.sql.query", "checks[3] (I1).where"):
        assert key in errors, f"{key} not refused:\n{errors}"
    assert state(bank, pg_database.name) == before


# ---------------------------------------------------------------- what the guard cannot see
def test_a_write_hidden_in_a_function_is_stopped_by_the_read_only_session(pytester, pg_url,
                                                                          bank):
    bank.execute("create function my_writer() returns integer language sql as "
                 "$$ insert into ledger (account_id, amount) values (1, 1000000) "
                 "returning 1 $$")
    bank.execute("create function my_updater() returns integer language plpgsql as "
                 "$$ begin update accounts set balance = 0; return 1; end $$")
    bank.execute("create function my_counter() returns bigint language sql as "
                 "$$ select nextval('order_seq') $$")
    bank.execute("create function my_switch() returns integer language plpgsql as $$ begin "
                 "perform set_config('transaction_read_only', 'off', true); "
                 "delete from ledger; return 1; end $$")
    before = {table: bank.execute(f"select count(*), sum({column}) from {table}").fetchone()
              for table, column in (("accounts", "balance"), ("ledger", "amount"))}
    checks = [{"id": f"H{n}", "title": name, "kind": "sql", "scalar": f"select {name}()",
               "expect": "exists"}
              for n, name in enumerate(("my_writer", "my_updater", "my_counter", "my_switch"))]
    result, document, _ = run_gate(pytester, pg_url, checks)
    assert result.ret == 1, result.stdout.str() + result.stderr.str()
    assert document is not None
    for record in document["checks"]:
        assert record["outcome"] == "error", (record["id"], record["message"])
        assert re.search(r"read-only transaction|transaction_read_only|read-write mode",
                         record["message"]), record["message"]
    after = {table: bank.execute(f"select count(*), sum({column}) from {table}").fetchone()
             for table, column in (("accounts", "balance"), ("ledger", "amount"))}
    assert after == before
    assert bank.execute("select is_called from order_seq").fetchone() == (False,)


LOCKER = ("create function my_locker() returns bigint language sql as $$ "
          "select pg_advisory_lock(4242); "
          "select count(*) from pg_locks where locktype = 'advisory' "
          "and pid = pg_backend_pid() and granted $$")
HOLDERS = ("select l.pid, a.state from pg_locks l join pg_stat_activity a on a.pid = l.pid "
           "where l.locktype = 'advisory' and l.granted and a.application_name like 'opsgate/%%' "
           "and a.datname = %s")


def run_with_a_lock_poll(pytester: pytest.Pytester, url: str, admin: psycopg.Connection,
                         database: str) -> tuple[dict[str, Any], list[tuple[float, list]]]:
    """Run ``select my_locker()`` beside a slower check; poll who holds advisory locks."""
    admin.execute("create function slow_one() returns integer language sql as "
                  "$$ select 1 from pg_sleep(0.4) $$")
    checks = [{"id": "L1", "title": "hidden lock", "kind": "sql", "scalar": "select my_locker()",
               "expect": "== 1"},
              {"id": "S1", "title": "keeps the run going", "kind": "window", "window": "1.6s",
               "interval": "400ms", "expect": "max <= 1",
               "sample": {"sql": {"query": "select slow_one()"}}}]
    done: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: done.setdefault(
        "run", run_gate(pytester, url, checks)))
    runner.start()
    polls: list[tuple[float, list]] = []
    while runner.is_alive():
        polls.append((time.monotonic(), admin.execute(HOLDERS, (database,)).fetchall()))
        time.sleep(0.02)
    runner.join()
    result, document, _ = done["run"]
    assert document is not None, result.stdout.str() + result.stderr.str()
    return document, polls


def test_an_advisory_lock_hidden_in_a_function_is_taken_a_documented_limitation(
        pytester, pg_url, pg_database, bank):
    """Read-only mode does not refuse ``pg_advisory_lock``: the function takes the lock.

    The defence is the role (README, 'A read-only role'): revoke EXECUTE on functions that
    take locks from the role opsgate connects as. This test pins down what happens: the
    function counts its own granted lock (1) inside opsgate's read-only transaction, the check
    passes, and the lock is gone once the run has ended.
    """
    bank.execute(LOCKER)
    document, _ = run_with_a_lock_poll(pytester, pg_url, bank, pg_database.name)
    record = next(c for c in document["checks"] if c["id"] == "L1")
    assert record["outcome"] == "passed" and record["observed"] == 1, record["message"]
    deadline = time.monotonic() + 5.0  # the backend ends a moment after the client hangs up
    while bank.execute("select count(*) from pg_locks where locktype = 'advisory'"
                       ).fetchone() != (0,):
        assert time.monotonic() < deadline, "an advisory lock outlived the run"
        time.sleep(0.05)


def test_a_hidden_advisory_lock_does_not_outlive_its_statement(pytester, pg_url, pg_database,
                                                               bank):
    """Once its statement is done, opsgate must not keep a job's lock on a pooled session for
    the rest of the run (that is the stuck-job incident, V10 / Q10, caused by the tool that
    diagnoses it). The statement itself is instant: the lock may be seen for a poll or two."""
    bank.execute(LOCKER)
    _, polls = run_with_a_lock_poll(pytester, pg_url, bank, pg_database.name)
    held = [(moment, holders) for moment, holders in polls if holders]
    held_for = (held[-1][0] - held[0][0]) if held else 0.0
    assert held_for < 0.3, (
        f"opsgate sessions held advisory lock 4242 for {held_for:.2f} s after the statement "
        f"that took it (holders, pid and state: {sorted({h for _, hs in held for h in hs})})")
