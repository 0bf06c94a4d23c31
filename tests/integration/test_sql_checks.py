"""sql checks end to end through the plugin against a real PostgreSQL (and SQLite).

Each test gets a fresh PostgreSQL database (``pg_url``), fills it through ``pg_admin``, writes
an environment file, runs ``pytest checks --env FILE`` in a subprocess and reads the run's
evidence.json. Tests that use ``pg_url`` get the ``postgres`` marker from tests/support/postgres.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
#: Plugins of the suite's own tests that a gate run does not need (hypothesis alone adds ~1 s).
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")


@dataclass
class Run:
    """One run of the catalog: pytest's result and the run's evidence.json."""

    result: pytest.RunResult
    document: dict[str, Any]

    def check(self, ident: str) -> dict[str, Any]:
        """The evidence record of check ``ident``."""
        found = [c for c in self.document["checks"] if c["id"] == ident]
        assert len(found) == 1, f"{ident} not in {[c['id'] for c in self.document['checks']]}"
        return found[0]


def run_catalog(pytester: pytest.Pytester, url: str, checks: list[dict[str, Any]],
                **database: Any) -> tuple[pytest.RunResult, Path]:
    """Run the catalog with ``checks`` against ``url``; the result and the report folder."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    environment = {"name": "itest", "targets": {"databases": {"main": {"url": url, **database}}},
                   "checks": checks}
    path = pytester.path / "itest.yaml"
    path.write_text(yaml.safe_dump(environment, sort_keys=False))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir", str(out),
                                           *QUIET)
    return result, out


def run_checks(pytester: pytest.Pytester, url: str, checks: list[dict[str, Any]],
               **database: Any) -> Run:
    """Run ``checks`` against the database at ``url`` (target options in ``database``)."""
    result, out = run_catalog(pytester, url, checks, **database)
    runs = list(out.iterdir()) if out.is_dir() else []
    assert len(runs) == 1, f"expected one run folder:\n{result.stdout.str()}\n{result.stderr.str()}"
    evidence = runs[0] / "evidence.json"
    assert evidence.is_file(), f"no evidence.json:\n{result.stdout.str()}\n{result.stderr.str()}"
    return Run(result, json.loads(evidence.read_text()))


def scalar(ident: str, query: str, expect: str) -> dict[str, Any]:
    """A scalar sql check."""
    return {"id": ident, "title": f"scalar {ident}", "kind": "sql", "scalar": query,
            "expect": expect}


def violations(ident: str, query: str, **options: Any) -> dict[str, Any]:
    """A violations sql check."""
    return {"id": ident, "title": f"violations {ident}", "kind": "sql", "violations": query,
            **options}


def seconds(record: dict[str, Any]) -> float:
    """How long the check took, from its evidence record."""
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(record["finished_at"]) - parse(record["started_at"])).total_seconds()


@pytest.fixture
def items(pg_admin: psycopg.Connection) -> psycopg.Connection:
    """``items(id, price)`` with three rows, one of them with a negative price."""
    pg_admin.execute("create table items (id serial primary key, price integer not null)")
    pg_admin.execute("insert into items (price) values (1), (2), (-3)")
    return pg_admin


# ---------------------------------------------------------------- scalar and violations
def test_scalar_passes_and_fails_with_the_observed_value(pytester, pg_url, items):
    run = run_checks(pytester, pg_url, [
        scalar("S1", "select count(*) from items", ">= 1"),
        scalar("S2", "select count(*) from items", "== 0"),
    ])
    assert run.result.ret == 1
    assert run.document["verdict"] == "BLOCKED"
    assert run.document["blocking"] == ["itest:S2"]
    passed, failed = run.check("S1"), run.check("S2")
    assert passed["outcome"] == "passed" and passed["observed"] == 3
    assert passed["evidence"]["asked"]["sql"] == "select count(*) from items"
    assert failed["outcome"] == "failed" and failed["observed"] == 3
    assert "(3) == 0" in failed["message"]
    run.result.stdout.fnmatch_lines(["*FAILED*itest:S2*(3) == 0*"])
    run.result.assert_outcomes(passed=1, failed=1)


def test_violations_count_every_violator_and_keep_a_capped_sample(pytester, pg_url, items):
    items.execute("insert into items (price) values (-4), (-5), (-6), (-7), (8)")
    run = run_checks(pytester, pg_url, [
        violations("V1", "select id, price from items where price < 0 order by id", sample=2),
        violations("V2", "select id from items where price > 100"),
    ])
    assert run.result.ret == 1
    failed = run.check("V1")
    assert failed["outcome"] == "failed"
    assert failed["observed"] == 5
    assert "violations (5) == 0" in failed["message"]
    seen = failed["evidence"]["seen"]
    assert seen["total"] == 5
    assert seen["rows"] == [{"id": 3, "price": -3}, {"id": 4, "price": -4}]
    assert failed["evidence"]["asked"]["sql"].startswith("select id, price from items")
    clean = run.check("V2")
    assert clean["outcome"] == "passed" and clean["observed"] == 0
    assert clean["evidence"]["seen"]["total"] == 0 and clean["evidence"]["seen"]["rows"] == []
    run.result.assert_outcomes(passed=1, failed=1)


def test_sql_error_is_an_error_not_a_failure(pytester, pg_url, items):
    run = run_checks(pytester, pg_url, [
        scalar("E1", "select count(*) from no_such_table", "== 0"),
        violations("E2", "select id from items where no_such_column > 0"),
    ])
    assert run.result.ret == 1
    for ident, name in (("E1", "no_such_table"), ("E2", "no_such_column")):
        record = run.check(ident)
        assert record["outcome"] == "error", record
        assert record["reason"] == "query"
        assert name in record["message"]
    assert run.document["counts"] == {"passed": 0, "failed": 0, "error": 2, "not_run": 0}
    run.result.assert_outcomes(errors=2)


# ---------------------------------------------------------------- the session's safety
def test_write_statements_are_refused_before_anything_runs(pytester, pg_url, pg_admin):
    pg_admin.execute("create sequence s")
    pg_admin.execute("create table t (n integer)")
    result, out = run_catalog(pytester, pg_url, [
        scalar("W1", "select nextval('s')", ">= 1"),
        scalar("W3", "with w as (insert into t values (2) returning n) select count(*) from w",
               "== 1"),
    ])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not out.exists()
    errors = result.stderr.str()
    assert "checks[0] (W1).scalar" in errors and "nextval" in errors
    assert "checks[1] (W3).scalar" in errors
    assert pg_admin.execute("select count(*) from t").fetchone() == (0,)
    assert pg_admin.execute("select is_called from s").fetchone() == (False,)


def test_session_is_read_only(pytester, pg_url, pg_admin):
    """A write hidden in a function passes the SQL check; the read-only session stops it."""
    pg_admin.execute("create table t (n integer)")
    pg_admin.execute("create function bump() returns integer language sql as "
                     "$$ insert into t values (1) returning n $$")
    run = run_checks(pytester, pg_url, [scalar("W2", "select bump()", "== 1")])
    assert run.result.ret == 1
    record = run.check("W2")
    assert record["outcome"] == "error", record
    assert "read-only transaction" in record["message"], record["message"]
    assert pg_admin.execute("select count(*) from t").fetchone() == (0,)
    run.result.assert_outcomes(errors=1)


def test_application_name_names_opsgate_and_the_run(pytester, pg_url):
    run = run_checks(pytester, pg_url, [scalar(
        "A1", "select application_name from pg_stat_activity where pid = pg_backend_pid()",
        "matches ^opsgate")])
    assert run.result.ret == 0, run.result.stdout.str()
    record = run.check("A1")
    assert record["outcome"] == "passed"
    assert record["observed"].startswith("opsgate")
    assert run.document["run_id"] in record["observed"]


def test_statement_timeout_cancels_a_slow_query(pytester, pg_url, pg_admin):
    pg_admin.execute("create function slow() returns integer language sql as "
                     "$$ select 1 from pg_sleep(10) $$")
    run = run_checks(pytester, pg_url, [scalar("T1", "select slow()", "exists")],
                     statement_timeout="1s")
    assert run.result.ret == 1
    record = run.check("T1")
    assert record["outcome"] == "error" and record["reason"] == "timeout", record
    assert "statement timeout" in record["message"], record["message"]
    assert 0.8 <= seconds(record) < 2.5, seconds(record)
    run.result.assert_outcomes(errors=1)


def test_lock_wait_ends_at_the_lock_timeout(pytester, pg_url, pg_admin):
    pg_admin.execute("create table t (n integer)")
    with pg_admin.transaction():
        pg_admin.execute("lock table t in access exclusive mode")
        run = run_checks(pytester, pg_url, [scalar("L1", "select count(*) from t", "== 0")])
    assert run.result.ret == 1
    record = run.check("L1")
    assert record["outcome"] == "error" and record["reason"] == "timeout", record
    assert re.search(r"lock timeout", record["message"]), record["message"]
    assert 0.8 <= seconds(record) < 2.5, seconds(record)
    run.result.assert_outcomes(errors=1)


# ---------------------------------------------------------------- SQLite
def test_sqlite_scalar_pass_and_fail(pytester, tmp_path):
    database = tmp_path / "app.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("create table items (id integer primary key, price integer)")
        connection.executemany("insert into items (price) values (?)", [(1,), (2,), (-3,)])
    connection.close()
    run = run_checks(pytester, f"sqlite:///{database}", [
        scalar("Q1", "select count(*) from items", ">= 1"),
        scalar("Q2", "select count(*) from items where price < 0", "== 0"),
    ])
    assert run.result.ret == 1
    assert run.check("Q1")["outcome"] == "passed" and run.check("Q1")["observed"] == 3
    failed = run.check("Q2")
    assert failed["outcome"] == "failed" and "(1) == 0" in failed["message"]
    run.result.assert_outcomes(passed=1, failed=1)
