"""Before any check runs: is this the system we mean, and can our database role write?

Target identity (``identity:`` in the environment) is compared with what the targets say
about themselves; a mismatch stops the run. Each PostgreSQL target a selected check uses is
asked what its role may do (superuser; INSERT, UPDATE, DELETE or TRUNCATE on any table):
read-only transactions are not a security boundary, only a role without write privileges
is, so an environment marked ``production: true`` refuses a role that can write unless its
target says ``accept_write_role: true``. Could-not-verify stops the run too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from opsgate.config.loader import LoadedEnvironment
from opsgate.errors import ProbeError
from opsgate.runner import CheckCase, Context, ProbeRunner

TIMEOUT = 10.0
ROLE_SQL = """
select current_user as role, current_database() as database,
       (select rolsuper from pg_roles where rolname = current_user) as superuser,
       (select string_agg(name, ', ') from (
          select n.nspname || '.' || c.relname as name
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relkind in ('r', 'p')
            and n.nspname not in ('pg_catalog', 'information_schema')
            and n.nspname not like 'pg_toast%'
            and has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
          order by 1 limit 20) as w) as writable
"""


@dataclass
class Preflight:
    """What was verified before the checks, and what stops the run."""

    problems: list[str] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)


def preflight(runner: ProbeRunner, environments: list[LoadedEnvironment],
              cases: list[CheckCase]) -> Preflight:
    """Verify identity and database roles of every environment with selected checks."""
    result = Preflight()
    for env in environments:
        if not any(case.env is env for case in cases):
            continue
        ctx = Context(runner, env)
        for name in _databases_used(env, cases):
            _database(ctx, name, result)
        for name, expected in env.environment.identity.http.items():
            _http(ctx, name, expected, result)
        if env.environment.identity.prometheus is not None:
            _prometheus(ctx, env.environment.identity.prometheus.external_labels, result)
    return result


def _databases_used(env: LoadedEnvironment, cases: list[CheckCase]) -> list[str]:
    declared = env.environment.targets.databases
    used = set(env.environment.identity.databases)
    for case in cases:
        if case.env is env:
            used.update(env.environment.targets.database_name(ref.name)
                        for ref in case.check.references()
                        if ref.section == "databases" and declared)
    return sorted(name for name in used if name in declared)


def _database(ctx: Context, name: str, result: Preflight) -> None:
    from opsgate.probes.sql import query_rows

    target = ctx.targets.databases[name]
    where = f"{ctx.env.name}: database {name}"
    if not target.is_postgres:
        result.facts.append({"environment": ctx.env.name, "database": name,
                             "role": "sqlite file opened read-only"})
        _database_identity(ctx, name, None, where, result)
        return
    try:
        row = query_rows(ctx.runner.engine(ctx.env, name), ROLE_SQL, ctx.deadline(TIMEOUT))[0]
    except ProbeError as exc:
        result.problems.append(f"{where}: could not ask the database about its role ({exc}); "
                               "nothing was checked")
        return
    writes = bool(row["superuser"] or row["writable"])
    result.facts.append({"environment": ctx.env.name, "database": name, "role": row["role"],
                         "superuser": bool(row["superuser"]), "writable": row["writable"],
                         "can_write": writes, "accepted": target.accept_write_role})
    if writes and ctx.env.environment.production and not target.accept_write_role:
        what = "superuser" if row["superuser"] else f"can write {row['writable']}"
        result.problems.append(
            f"{where}: role {row['role']!r} {what}; a production environment needs a read-only "
            "role (README: 'A read-only role'), or 'accept_write_role: true' on the target")
    _database_identity(ctx, name, row, where, result)


def _database_identity(ctx: Context, name: str, row: dict[str, Any] | None, where: str,
                       result: Preflight) -> None:
    expected = ctx.env.environment.identity.databases.get(name)
    if expected is None:
        return
    if row is None:
        result.problems.append(f"{where}: identity can be verified on PostgreSQL only")
        return
    for key, actual in (("database", row["database"]), ("user", row["role"])):
        wanted = getattr(expected, key)
        if wanted is not None and wanted != actual:
            result.problems.append(f"{where}: identity mismatch: {key} is {actual!r}, the "
                                   f"environment expects {wanted!r}; is this the right target?")


def _http(ctx: Context, name: str, expected: Any, result: Preflight) -> None:
    from opsgate.evaluate import judge_pairs
    from opsgate.kinds.http import http_pairs

    where = f"{ctx.env.name}: http {name}"
    try:
        observation = ctx.http_request(name, expected.request, TIMEOUT)
    except ProbeError as exc:
        result.problems.append(f"{where}: could not verify identity ({exc})")
        return
    outcome = judge_pairs(list(http_pairs(expected.expect, observation.fields)))
    result.facts.append({"environment": ctx.env.name, "http": name, "identity": outcome.message})
    if outcome.status != "passed":
        result.problems.append(f"{where}: identity mismatch: {outcome.message}; is this the "
                               "right target?")


def _prometheus(ctx: Context, labels: dict[str, str], result: Preflight) -> None:
    where = f"{ctx.env.name}: prometheus"
    config = ctx.targets.prometheus
    assert config is not None  # validated
    client = ctx.runner.http_client(ctx.env, "prometheus")
    try:
        response = client.get(config.url.rstrip("/") + "/api/v1/status/config",
                              headers=config.headers, timeout=TIMEOUT)
        text = response.json()["data"]["yaml"]
        actual = (yaml.safe_load(text).get("global") or {}).get("external_labels") or {}
    except Exception as exc:  # any failure to read it means identity is unverified
        result.problems.append(f"{where}: could not read its external labels ({exc})")
        return
    result.facts.append({"environment": ctx.env.name, "prometheus": actual})
    for key, wanted in labels.items():
        if actual.get(key) != wanted:
            result.problems.append(f"{where}: identity mismatch: external label {key} is "
                                   f"{actual.get(key)!r}, the environment expects {wanted!r}")
