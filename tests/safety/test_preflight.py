"""Guarantees 1 and 3: a production run refuses a database role that can write, and a run
talking to the wrong system stops before any check (real PostgreSQL, Prometheus, HTTP)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg import sql
from werkzeug.wrappers import Request, Response

from tests.support.http import serve
from tests.support.prometheus import constant, openmetrics

REPO = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")
CHECK = {"id": "S1", "title": "rows", "kind": "sql", "scalar": "select count(*) from items",
         "expect": ">= 0"}


def run(pytester: pytest.Pytester, environment: dict[str, Any]) -> tuple[Any, dict | None]:
    """Run the catalog on ``environment``; pytest's result and evidence.json if written."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    path = pytester.path / "env.yaml"
    path.write_text(yaml.safe_dump({"name": "prod", **environment}, sort_keys=False))
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir",
                                           str(out), *QUIET)
    evidence = list(out.glob("*/evidence.json")) if out.exists() else []
    return result, json.loads(evidence[0].read_text()) if evidence else None


@pytest.fixture
def items(pg_admin):
    pg_admin.execute("create table items (id integer)")
    return pg_admin


@pytest.fixture
def read_only_url(pg_database, items):
    """A login role with SELECT only, and its URL."""
    role = f"{pg_database.name}_ro"
    with pg_database.server.connect() as admin:
        admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
    items.execute(sql.SQL("grant select on items to {}").format(sql.Identifier(role)))
    try:
        yield f"postgresql+psycopg://{role}@127.0.0.1:5432/{pg_database.name}"
    finally:
        items.execute(sql.SQL("drop owned by {} cascade").format(sql.Identifier(role)))
        items.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                      "where usename = %s", (role,))
        with pg_database.server.connect() as admin:
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def database_env(url: str, **target: Any) -> dict[str, Any]:
    return {"production": True, "targets": {"databases": {"main": {"url": url, **target}}},
            "checks": [CHECK]}


def test_production_refuses_a_role_that_can_write(pytester, pg_url, items):
    result, document = run(pytester, database_env(pg_url))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*stopped before any check ran*", "*database main: role*"
                                 "*production environment needs a read-only role*"])
    assert document is not None and document["verdict"] == "INCOMPLETE"
    assert document["checks"] == [] and document["preflight"]["problems"]


def test_production_runs_with_a_read_only_role(pytester, read_only_url):
    result, document = run(pytester, database_env(read_only_url))
    assert result.ret == 0, result.stdout.str()
    (fact,) = document["preflight"]["facts"]
    assert fact["can_write"] is False and fact["superuser"] is False


def test_production_write_role_runs_when_explicitly_accepted(pytester, pg_url, items):
    result, document = run(pytester, database_env(pg_url, accept_write_role=True))
    assert result.ret == 0, result.stdout.str()
    (fact,) = document["preflight"]["facts"]
    assert fact["can_write"] is True and fact["accepted"] is True


def test_database_identity_mismatch_stops_the_run(pytester, pg_url, items):
    environment = {**database_env(pg_url, accept_write_role=True),
                   "identity": {"databases": {"main": {"database": "app_production"}}}}
    result, document = run(pytester, environment)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*identity mismatch: database is*expects 'app_production'*"])
    assert document["checks"] == []


@pytest.fixture
def version_server():
    """A service whose /version says which environment it is."""

    @Request.application
    def app(request: Request) -> Response:
        return Response(json.dumps({"environment": "production"}),
                        content_type="application/json")

    with serve(app) as url:
        yield url


def http_env(url: str, expected: str) -> dict[str, Any]:
    return {"targets": {"http": {"api": {"base_url": url}}},
            "identity": {"http": {"api": {"request": {"path": "/version"},
                                          "expect": {"json": {"environment": f"== {expected}"}}}}},
            "checks": [{"id": "H1", "title": "up", "kind": "http",
                        "request": {"path": "/version"}}]}


def test_http_identity_matches_and_mismatches(pytester, version_server):
    result, _ = run(pytester, http_env(version_server, "production"))
    assert result.ret == 0, result.stdout.str()
    result, document = run(pytester, http_env(version_server, "staging"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(['*http api: identity mismatch*"production"*== staging*'])
    assert document["checks"] == []


def test_prometheus_external_label_mismatch_stops_the_run(pytester, prometheus):
    url = prometheus(openmetrics({"up": constant(1)}), external_labels={"env": "production"})
    environment = {"targets": {"prometheus": {"url": url}},
                   "identity": {"prometheus": {"external_labels": {"env": "staging"}}},
                   "checks": [{"id": "M1", "title": "up", "kind": "promql", "query": "up",
                               "expect": "== 1"}]}
    result, _ = run(pytester, environment)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*external label env is 'production'*expects 'staging'*"])
    environment["identity"]["prometheus"]["external_labels"]["env"] = "production"
    result, _ = run(pytester, environment)
    assert result.ret == 0, result.stdout.str()
