"""The environment files under ``fixtures/environments``: each one loads and validates, every
check is reachable from a checklist, and the example files together configure every runbook step
of the catalog (all but T7 and T8, which need the history of an incident, not one run).

Check ids follow ``<CATALOG ROW>-<what>`` (``Q2-dlq-stable``) or the bare row (``Q2``): the part
before the first ``-`` names the row of ``CATALOG.md`` the check measures. The catalog is read
from ``../shared/CATALOG.md`` beside the repository when it is there (CI clones it beside this
one), else from ``FALLBACK_ROWS`` below.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from opsgate.config.loader import LoadedEnvironment, load_environment
from opsgate.config.promqlcheck import check_promql
from opsgate.config.sqlguard import check_read_only
from opsgate.guard import refusal
from opsgate.kinds.invariant import InvariantCheck, build_query
from opsgate.kinds.promql import PromqlCheck
from opsgate.kinds.sources import PromqlSource, SqlSource
from opsgate.kinds.sql import SqlCheck
from opsgate.redaction import Redactor
from opsgate.selection import select
from opsgate.triage import status_update, suggest

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = REPO / "fixtures" / "environments"
FILES = sorted(ENVIRONMENTS.glob("*.yaml"))
EXAMPLES = sorted(ENVIRONMENTS.glob("*.example.yaml"))
ORYA = ENVIRONMENTS / "orya-obraflow.example.yaml"
MVP = ENVIRONMENTS / "mvp-backend.example.yaml"
CATALOG = REPO.parent / "shared" / "CATALOG.md"
NOT_CONFIGURED = frozenset({"T7", "T8"})  # MTTA/MTTR timelines and postmortems span many runs
FALLBACK_ROWS = (
    *(f"H{n}" for n in range(1, 8)), *(f"Q{n}" for n in range(1, 13)),
    *(f"D{n}" for n in range(1, 10)), *(f"S{n}" for n in range(1, 7)),
    *(f"M{n}" for n in range(1, 8)), *(f"F{n}" for n in range(1, 7)),
    *(f"T{n}" for n in range(1, 9)),
)
ROW = re.compile(r"^([A-Z][0-9]+)(?:-|$)")
REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CAPTURED = re.compile(r"(?<!\$)\{[A-Za-z_][A-Za-z0-9_]*\}")  # a flow step's {capture}
NO_SIDE_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio",
                   "-p", "no:cacheprovider")


def ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def catalog_rows() -> list[str]:
    """Row ids of the catalog (``| H1 | ...`` lines), in order."""
    if CATALOG.is_file():
        rows = re.findall(r"^\|\s*([A-Z][0-9]+)\s*\|", CATALOG.read_text(encoding="utf-8"),
                          re.MULTILINE)
        if rows:
            return rows
    return list(FALLBACK_ROWS)


def raw(path: Path) -> Any:
    """The file as plain YAML, before ``${VAR}`` expansion and validation."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def variables(path: Path) -> set[str]:
    """Every ``${VAR}`` the file references (``$${`` is a literal, not a reference)."""
    return {name for text in strings(raw(path)) for name in REFERENCE.findall(text) if name}


def dummy_environ(path: Path) -> dict[str, str]:
    """A dummy value per referenced variable (URL-safe: some land in database URLs)."""
    return {name: f"dummy-{name.lower().replace('_', '-')}" for name in variables(path)}


@functools.cache
def load(path: Path) -> LoadedEnvironment:
    return load_environment(path, dummy_environ(path))


def models(node: Any) -> Iterator[BaseModel]:
    """``node`` and every pydantic model inside it (fields, lists, dict values)."""
    if isinstance(node, BaseModel):
        yield node
        for name in type(node).model_fields:
            yield from models(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from models(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from models(item)


def promql_queries(env: LoadedEnvironment) -> list[str]:
    found = []
    for model in models(env.environment.checks):
        if isinstance(model, PromqlCheck | PromqlSource):
            found.append(model.query)
    return found


def configured_sql(env: LoadedEnvironment) -> list[str]:
    found = []
    for model in models(env.environment.checks):
        if isinstance(model, SqlCheck):
            found += [query for query in (model.scalar, model.violations) if query]
        elif isinstance(model, SqlSource):
            found.append(model.query)
    return found


def row_of(check_id: str) -> str | None:
    match = ROW.match(check_id)
    return match.group(1) if match else None


# ---------------------------------------------------------------- every file
@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_environment_loads_and_validates(path):
    env = load(path)
    assert env.environment.checks, f"{path.name} configures no check"
    assert env.secrets == frozenset(dummy_environ(path).values()) - {""}


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_every_promql_parses(path):
    queries = promql_queries(load(path))
    for query in queries:
        check_promql(query)  # raises InvalidPromql naming the query


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_every_sql_is_one_read(path):
    env = load(path)
    for query in configured_sql(env):
        check_read_only(query)  # raises UnsafeSql naming what is not a read
    databases = env.environment.targets.databases
    for check in env.environment.checks:
        if isinstance(check, InvariantCheck):
            target = databases[check.database or next(iter(databases))]
            check_read_only(build_query(check, "postgresql" if target.is_postgres
                                        else "sqlite").sql)


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_every_checklist_selects_a_check_and_every_check_is_in_one(path):
    env = load(path)
    empty = [name for name in env.environment.checklists if not select([env], name)]
    assert not empty, f"{path.name}: checklists selecting no check: {empty}"
    named = {ident for checklist in env.environment.checklists.values()
             for ident in checklist.check_ids()}
    orphans = [check.id for check in env.environment.checks
               if not check.checklists and check.id not in named]
    assert not orphans, f"{path.name}: checks in no checklist: {orphans}"


def judgement_labels(check: Any) -> set[str] | None:
    """The labels a check's judgements carry (what a triage fact can name), or None when the
    kind's labels depend on what it measures."""
    if check.kind == "http":
        expect = check.expect
        labels = {f"json {expression}" for expression in expect.json_fields}
        labels |= {f"header {name}" for name in expect.headers}
        labels |= {name for name in ("status", "latency_ms", "body")
                   if getattr(expect, name) is not None}
        return labels
    if check.kind in ("promql", "window", "freshness", "baseline", "sql") and check.label:
        return {check.label}
    return None


WITH_TRIAGE = [path for path in FILES if "\ntriage:" in path.read_text()]
PRODUCTION = [path for path in EXAMPLES if "\nproduction: true" in path.read_text()]


def test_both_examples_have_triage_and_one_is_production():
    assert set(EXAMPLES) <= set(WITH_TRIAGE) and PRODUCTION == [ORYA]


@pytest.mark.parametrize("path", WITH_TRIAGE, ids=ids(WITH_TRIAGE))
def test_triage_facts_come_from_checks_of_the_triage_checklist(path):
    env = load(path)
    triage = env.environment.triage
    assert triage is not None
    selected = {case.check.id: case.check for case in select([env], triage.checklist)}
    for name, fact in triage.facts.items():
        assert fact.check in selected, (
            f"fact {name}: check {fact.check} is not in checklist {triage.checklist}, so the "
            "fact would always be unknown")
        labels = judgement_labels(selected[fact.check])
        if fact.value not in (None, "outcome") and labels is not None:
            assert fact.value in labels, f"fact {name}: {fact.value!r} is not one of {labels}"


# ---------------------------------------------------------------- the example files
@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_example_check_ids_name_a_catalog_row(path):
    rows = set(catalog_rows())
    wrong = [check.id for check in load(path).environment.checks
             if row_of(check.id) not in rows]
    assert not wrong, f"{path.name}: ids not starting with a catalog row: {wrong}"


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_example_talks_to_what_it_names_with_read_only_roles(path):
    env = load(path).environment
    databases = env.targets.databases
    assert set(env.identity.databases) == set(databases), "identity for every database"
    assert env.identity.http or env.identity.prometheus, "identity for a service too"
    assert not [name for name, target in databases.items() if target.accept_write_role]
    for name, target in raw(path)["targets"].get("databases", {}).items():
        password = make_url(target["url"]).password
        assert password is None or REFERENCE.fullmatch(password), (
            f"database {name}: a password must be a ${{VAR}} reference")


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_example_secrets_are_only_references(path):
    """A sensitive header holds a ${VAR}, a flow capture ({access_token}) or nothing; a literal
    is allowed only as the deliberately wrong credential of an H4 check (fail closed)."""
    sensitive = Redactor().is_sensitive
    document = raw(path)
    blocks = [("targets.prometheus", (document["targets"].get("prometheus") or {}))]
    blocks += [(f"targets.http.{name}", target)
               for name, target in document["targets"].get("http", {}).items()]
    for check in document["checks"]:
        blocks += [(f"check {check['id']}", node) for node in _requests(check)]
    for where, block in blocks:
        for header, value in (block.get("headers") or {}).items():
            if not sensitive(header) or value is None or any(REFERENCE.findall(value)) \
                    or CAPTURED.search(value):
                continue
            assert where.startswith("check H4-"), f"{where}: literal value in header {header}"


def _requests(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "request" in node and isinstance(node["request"], dict):
            yield node["request"]
        for value in node.values():
            yield from _requests(value)
    elif isinstance(node, list):
        for item in node:
            yield from _requests(item)


@pytest.mark.parametrize("path", PRODUCTION, ids=ids(PRODUCTION))
def test_mutations_refused_in_production_never_block_a_checklist(path):
    """Against production a mutating check runs only if production_safe; anywhere else in a
    checklist it could never pass, so it must be advisory there."""
    env = load(path)
    assert env.environment.production
    for name in env.environment.checklists:
        for case in select([env], name):
            if refusal(case, allow_mutations=True) is not None:
                assert case.advisory, f"{name}: {case.check.id} is refused in production"


def test_the_production_shaped_example_is_marked_production():
    assert load(ORYA).environment.production is True
    assert load(MVP).environment.production is False


def test_examples_cover_every_catalog_row_but_t7_and_t8():
    rows = [row for row in catalog_rows() if row not in NOT_CONFIGURED]
    covered: dict[str, list[str]] = {}
    for path in EXAMPLES:
        env = load(path)
        for check in env.environment.checks:
            covered.setdefault(row_of(check.id) or "", []).append(f"{env.name}:{check.id}")
        for row, how in _record_rows(env).items():
            if how:
                covered.setdefault(row, []).append(f"{env.name}:{how}")
    missing = [row for row in rows if row not in covered]
    assert not missing, f"catalog rows no example configures: {missing}"
    assert {ORYA, MVP} <= set(EXAMPLES)


def _record_rows(env: LoadedEnvironment) -> dict[str, str | None]:
    """T1-T3, T5 and T6 are configured by triage and checklists, not by a check of their own."""
    environment = env.environment
    triage = environment.triage
    closures = [name for name, checklist in environment.checklists.items()
                if name.startswith("closure-") and checklist.items]
    release = environment.checklists.get("release")
    baselines = [case.check.id for case in select([env], "release")
                 if case.check.kind == "baseline"] if release else []
    return {
        "T1": "triage.facts" if triage and triage.facts else None,
        "T2": "triage.rules" if triage and triage.rules else None,
        "T3": "triage.status_template" if triage and triage.status_template else None,
        "T5": ", ".join(closures) or None,
        "T6": f"release with {', '.join(baselines)}" if baselines else None,
    }


def test_every_incident_type_of_the_playbooks_has_its_closure_checklist():
    expected = {
        ORYA: ["rollups-stale", "dlq", "payouts", "kafka-lag", "db-saturation",
               "release-regression", "api-error-spike", "sync-backlog", "storage",
               "observability-outage"],
        MVP: ["api-500", "db-down", "mass-401", "jobs-failing", "stuck-job",
              "ledger-divergence", "snapshot-divergence", "409-spike", "db-read-only",
              "partial-restore", "webhook-failures", "queue-backlog", "canary-advance",
              "canary-rollback", "duplicate-charge"],
    }
    for path, incidents in expected.items():
        checklists = load(path).environment.checklists
        missing = [i for i in incidents if f"closure-{i}" not in checklists]
        assert not missing, f"{path.name}: no closure checklist for {missing}"
        assert {"triage", "release"} <= set(checklists)
        for incident in incidents:
            assert checklists[f"closure-{incident}"].items, f"closure-{incident} has no items"


# ---------------------------------------------------------------- the examples' triage
def test_mvp_triage_follows_the_playbook_severities_and_template():
    triage = load(MVP).environment.triage
    assert triage is not None
    healthy = {"ready_ok": True, "db_ok": True, "worker_running": True, "queued": 3,
               "heartbeat_age_s": 4.0, "webhook_failed_last_hour": 0,
               "jobs_failed_last_hour": 0, "dead_letters_last_24h": 0}
    assert suggest(triage, healthy)["severity"] == "SEV-3"
    assert suggest(triage, {**healthy, "db_ok": False})["severity"] == "SEV-1"
    assert suggest(triage, {**healthy, "worker_running": False})["severity"] == "SEV-2"
    assert suggest(triage, {**healthy, "webhook_failed_last_hour": 2})["severity"] == "SEV-2"
    assert suggest(triage, {**healthy, "db_ok": None})["severity"] == "SEV-1"  # fail closed
    text = status_update(triage, suggest(triage, {**healthy, "db_ok": False}), healthy,
                         {"timestamp": "2026-01-05T10:00:00Z", "incident": "checkout down"})
    assert text == ("[SEV-1] 2026-01-05T10:00:00Z - Incident checkout down. Impact: "
                    "<who/how many> under assessment. Current status: investigating. "
                    "Next update in 30 min.")


def test_orya_triage_follows_the_obraflow_severity_matrix():
    triage = load(ORYA).environment.triage
    assert triage is not None
    healthy = {"health_status": 200, "error_ratio_min_10m": 0.001, "p95_min_30m": 0.2,
               "dlq_ratio": 0.0, "sync_staleness_s": 12.0}
    cases = [({}, "Sev4"), ({"error_ratio_min_10m": 0.25}, "Sev1"),
             ({"health_status": 503}, "Sev1"), ({"p95_min_30m": 1.2}, "Sev2"),
             ({"dlq_ratio": 0.02}, "Sev2"), ({"error_ratio_min_10m": 0.03}, "Sev2"),
             ({"sync_staleness_s": 9000.0}, "Sev3"), ({"p95_min_30m": None}, "Sev2")]
    for change, severity in cases:
        assert suggest(triage, {**healthy, **change})["severity"] == severity, change
    text = status_update(triage, suggest(triage, healthy), healthy,
                         {"timestamp": "2026-01-05T10:00:00Z", "incident": "INC-7",
                          "environment": "orya-obraflow-prd"})
    assert text.startswith("# [STATUS] Incidente Sev4 - INC-7 (orya-obraflow-prd)")
    assert "**Proxima atualizacao:** 15 min" in text


# ---------------------------------------------------------------- collection, end to end
NO_NETWORK = '''\
"""Loaded with -p before opsgate configures: any connection attempt is logged and refused."""
import os
import socket

import opsgate.probes.http
import opsgate.runner

LOG = os.environ["OPSGATE_TEST_NETWORK_LOG"]


def refuse(what):
    def attempt(*args, **kwargs):
        with open(LOG, "a", encoding="utf-8") as log:
            log.write(f"{what}\\n")
        raise OSError(f"{what}: no network during collection")
    return attempt


socket.socket.connect = refuse("socket.connect")
socket.socket.connect_ex = refuse("socket.connect_ex")
socket.create_connection = refuse("socket.create_connection")
socket.getaddrinfo = refuse("socket.getaddrinfo")
opsgate.runner.ProbeRunner.engine = refuse("ProbeRunner.engine")
opsgate.runner.ProbeRunner.http_client = refuse("ProbeRunner.http_client")
opsgate.probes.http.make_http_client = refuse("make_http_client")
'''


@pytest.mark.parametrize("path", EXAMPLES, ids=ids(EXAMPLES))
def test_collect_only_makes_one_item_per_check_without_network(pytester, monkeypatch, path):
    shutil.copytree(REPO / "checks", pytester.path / "checks")
    (pytester.path / "no_network.py").write_text(NO_NETWORK, encoding="utf-8")
    log = pytester.path / "network.log"
    monkeypatch.setenv("OPSGATE_TEST_NETWORK_LOG", str(log))
    for name, value in dummy_environ(path).items():
        monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--collect-only", "-q",
                                           "-p", "no_network", *NO_SIDE_PLUGINS)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, output
    env = load(path)
    collected = re.findall(r"::test_check\[(.+)\]$", result.stdout.str(), re.MULTILINE)
    assert collected == [f"{env.name}:{check.id}" for check in env.environment.checks], output
    assert not log.exists(), log.read_text(encoding="utf-8")
    assert not (pytester.path / "reports").exists(), "collection wrote a run folder"
