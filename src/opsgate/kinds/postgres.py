"""``kind: postgres``: ready-made PostgreSQL operations checks that need only a database target.

Every query is a plain read through the run's normal read-only session (``Context.sql_scalar``
and ``Context.sql_violations``); the database filters and counts, and only violators come back,
at most ``sample`` of them. ``check:`` is one of (catalog ids in brackets):

- ``reachable`` [S1]: ``select 1`` answers within ``max_latency`` (default 1s). The latency is
  the probe's: taking a pooled connection (or opening one) plus the round trip.
- ``connection_saturation`` [S3]: client sessions / ``max_connections`` ``< max`` (default 0.8),
  over the whole server. Sessions the role may not inspect cannot be told from background
  processes and are all counted (a ratio slightly too high, never too low).
- ``idle_in_transaction`` [S4]: no session of this database idle in a transaction for longer
  than ``max_age`` (default 60s, counted from ``state_change``).
- ``advisory_locks`` [Q10]: no granted advisory lock in this database whose holder has been
  idle in a transaction (or, unless ``include_idle: false``, idle: a worker that died behind a
  silent connection still looks idle) for longer than ``idle_for`` (default 30s); ``key: N``
  (``pg_advisory_lock(bigint)``) or ``key: [A, B]`` (``pg_advisory_lock(int, int)``) narrows it
  to one lock.
- ``lock_waits`` [S6]: no session of this database waiting for a lock (``wait_event_type =
  'Lock'``) for longer than ``max_wait`` (default 10s, from ``pg_locks.waitstart``,
  PostgreSQL 14+), with ``pg_blocking_pids`` and the blockers' state as evidence.
- ``writable`` / ``read_only`` [S5]: the server's mode, one of ``primary`` (accepts writes),
  ``read_only`` (not in recovery, but new sessions start read-only) and ``replica``
  (``pg_is_in_recovery()``). ``expect`` is a mode or a list of modes; ``writable`` expects
  ``primary`` by default, ``read_only`` expects ``[replica, read_only]``. See *Read-only* below.
- ``migration_version`` [S2]: the applied schema version against ``expect`` (any condition),
  with a ``tool`` preset: ``alembic`` (``alembic_version.version_num``; several heads read
  ``a,b`` sorted), ``flyway`` (``flyway_schema_history.version`` of the highest successful
  ``installed_rank``; failed rows must be 0), ``prisma`` (``_prisma_migrations.migration_name``,
  the greatest finished and not rolled back; unfinished ones must be 0) or ``custom`` (``table``,
  ``column`` and optionally ``order_by``: the value of the newest row, else every value sorted).

Session checks (``idle_in_transaction``, ``advisory_locks``, ``lock_waits``) first count the
sessions of this database that ``pg_stat_activity`` hides from opsgate's role (``query`` reads
``<insufficient privilege>``); any hidden session makes the check an error, never a pass: grant
the role ``pg_monitor`` (or ``pg_read_all_stats``). opsgate's own session is always excluded.

*Read-only.* opsgate's session itself starts with ``default_transaction_read_only=on`` (a
startup option), so ``current_setting('transaction_read_only')``, ``SHOW`` and even
``pg_settings.reset_val`` describe opsgate, not the application. What a new application session
gets is resolved the way PostgreSQL applies settings, highest first: ``ALTER ROLE role IN
DATABASE``, ``ALTER ROLE role`` (only with ``role: NAME``, the application's role), ``ALTER
DATABASE``, ``ALTER ROLE ALL`` (all from ``pg_db_role_setting``, readable by every role), then
the server's configuration files and ``ALTER SYSTEM`` (``pg_file_settings``, readable only by
superusers unless granted). When the answer depends on the server level and opsgate cannot read
it, the check is an error unless ``ignore_server_setting: true`` accepts that blind spot (it is
recorded in the evidence). Values given on the postmaster's command line are not visible at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from opsgate.conditions import Condition
from opsgate.config.base import CheckBase, Pair, Reference
from opsgate.durations import Duration, format_duration
from opsgate.errors import NoData, ProbeError
from opsgate.sqlnames import (
    Identifier,
    QualifiedName,
    quote_identifier,
    quote_literal,
    quote_qualified,
)

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation
    from opsgate.runner import Context

PgCheck = Literal["reachable", "connection_saturation", "idle_in_transaction", "advisory_locks",
                  "lock_waits", "writable", "read_only", "migration_version"]
Tool = Literal["alembic", "flyway", "prisma", "custom"]
MODES = ("primary", "read_only", "replica")
NO_VIOLATIONS = Condition.parse("== 0")
HIDDEN = "<insufficient privilege>"
SETTING = "default_transaction_read_only"
INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)

COMMON = frozenset({*CheckBase.model_fields, "kind", "check", "database"})
CHECK_FIELDS: dict[str, frozenset[str]] = {
    "reachable": frozenset({"max_latency"}),
    "connection_saturation": frozenset({"max"}),
    "idle_in_transaction": frozenset({"max_age", "sample"}),
    "advisory_locks": frozenset({"idle_for", "key", "include_idle", "sample"}),
    "lock_waits": frozenset({"max_wait", "sample"}),
    "writable": frozenset({"expect", "role", "ignore_server_setting"}),
    "read_only": frozenset({"expect", "role", "ignore_server_setting"}),
    "migration_version": frozenset({"tool", "table", "column", "order_by", "expect"}),
}
#: Per tool: table, version column.
TOOLS: dict[str, tuple[str, str]] = {
    "alembic": ("alembic_version", "version_num"),
    "flyway": ("flyway_schema_history", "version"),
    "prisma": ("_prisma_migrations", "migration_name"),
}


class PostgresCheck(CheckBase):
    kind: Literal["postgres"]
    check: PgCheck
    database: str | None = None
    sample: Annotated[int, Field(ge=1, le=100)] = 10
    max_latency: Duration = 1.0
    max: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    max_age: Duration = 60.0
    idle_for: Duration = 30.0
    include_idle: bool = True
    key: int | list[int] | None = None
    max_wait: Duration = 10.0
    expect: str | list[str] | None = None
    role: Identifier | None = None
    ignore_server_setting: bool = False
    tool: Tool = "alembic"
    table: QualifiedName | None = None
    column: Identifier | None = None
    order_by: Identifier | None = None

    @model_validator(mode="after")
    def _fits_check(self) -> PostgresCheck:
        problems = check_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ------------------------------------------------------------ derived settings
    @property
    def condition(self) -> Condition:
        """The condition the main value is judged by."""
        if self.check == "migration_version":
            return Condition.parse(self.expect)
        modes = self.modes
        return Condition.parse(f"== {modes[0]}" if len(modes) == 1
                               else f"in [{', '.join(modes)}]")

    @property
    def modes(self) -> list[str]:
        if self.expect is None:
            return ["primary"] if self.check == "writable" else ["replica", "read_only"]
        return [self.expect] if isinstance(self.expect, str) else list(self.expect)

    @property
    def version_source(self) -> tuple[str, str]:
        """The migration table and version column (a tool's preset unless given)."""
        table, column = TOOLS.get(self.tool, (None, None))
        return self.table or table or "", self.column or column or ""

    # ------------------------------------------------------------ CheckBase
    def references(self) -> list[Reference]:
        return [Reference(("database",), "databases", self.database)]

    def target_problems(self, targets: Targets) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems only the targets reveal (for the loader's cross-check)."""
        target = targets.declared_database(self.database)
        name = self.database or (targets.database_name() if target else None)
        if target is not None and not target.is_postgres:
            return [(("kind",), f"kind postgres needs a PostgreSQL database; {name!r} is "
                     f"{target.url.split(':', 1)[0]}")]
        return []

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        queries = 1 if self.check in ("reachable", "connection_saturation",
                                      "migration_version") else 2
        return targets.database(self.database).budget(queries)

    def measure(self, ctx: Context) -> Observation:
        problems = self.target_problems(ctx.targets)
        if problems:
            raise ProbeError(problems[0][1])
        seconds = self.budget(ctx.targets)
        ctx.begin(seconds)
        return MEASURES[self.check](self, ctx, seconds)

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        fields = observation.fields
        if self.check == "reachable":
            limit = Condition.parse(f"< {_number(self.max_latency * 1000)}")
            yield Pair("latency_ms", fields.get("latency_ms"), limit)
        elif self.check == "connection_saturation":
            yield Pair("client sessions / max_connections", fields.get("value"),
                       Condition.parse(f"< {_number(self.max)}"))
        elif self.check in ("writable", "read_only"):
            yield Pair("mode", fields.get("mode"), self.condition)
        elif self.check == "migration_version":
            table, column = self.version_source
            yield Pair(f"{table}.{column}", fields.get("value"), self.condition)
            if self.tool in ("flyway", "prisma"):
                yield Pair("failed migrations", fields.get("failed"), NO_VIOLATIONS)
        else:
            yield Pair(violations_label(self), fields.get("violations"), NO_VIOLATIONS)


# ---------------------------------------------------------------- validation
def check_problems(check: PostgresCheck) -> list[str]:
    """Fields that do not apply to the chosen check, and values that do not fit it."""
    allowed = CHECK_FIELDS[check.check]
    problems = [f"'{name}' does not apply to check {check.check} (it takes: "
                f"{', '.join(sorted(allowed)) or 'nothing else'})"
                for name in sorted(check.model_fields_set - COMMON - allowed)]
    if check.check == "migration_version":
        problems += _migration_problems(check)
    elif check.check in ("writable", "read_only"):
        problems += [f"expect: {mode!r} is not a mode; use {', '.join(MODES)} (or a list)"
                     for mode in check.modes if mode not in MODES]
    elif check.check == "advisory_locks" and check.key is not None:
        problems += _key_problems(check.key)
    return problems


def _migration_problems(check: PostgresCheck) -> list[str]:
    problems = []
    if check.expect is None or not isinstance(check.expect, str):
        problems.append("migration_version needs 'expect', a condition such as "
                        "'== 2024_11_01_abc'")
    else:
        try:
            Condition.parse(check.expect)
        except ValueError as exc:
            problems.append(f"expect: {exc}")
    if check.tool == "custom" and not (check.table and check.column):
        problems.append("tool custom needs 'table' and 'column'")
    if check.order_by and check.tool != "custom":
        problems.append("'order_by' goes with tool custom")
    return problems


def _key_problems(key: int | list[int]) -> list[str]:
    if isinstance(key, int):
        return [] if INT8[0] <= key <= INT8[1] else ["key: a bigint advisory key is out of range"]
    if len(key) != 2 or not all(INT4[0] <= part <= INT4[1] for part in key):
        return ["key: give one bigint (pg_advisory_lock(bigint)) or two integers "
                "(pg_advisory_lock(int, int))"]
    return []


# ---------------------------------------------------------------- SQL
def reachable_sql() -> str:
    return "select 1 as one"


def saturation_sql() -> str:
    return ("select count(*)::float8 / current_setting('max_connections')::float8 as ratio, "
            "count(*) as client_backends, "
            "current_setting('max_connections')::int as max_connections, "
            "current_setting('superuser_reserved_connections')::int "
            "as superuser_reserved_connections, "
            f"count(*) filter (where a.query = '{HIDDEN}') as hidden_backends "
            "from pg_catalog.pg_stat_activity as a "
            "where a.backend_type = 'client backend' "
            "or (a.backend_type is null and a.usesysid is not null)")


def visibility_sql() -> str:
    """Sessions of this database (not ours) and how many of them are hidden from us."""
    return (f"select count(*) filter (where a.query = '{HIDDEN}') as hidden_backends, "
            "count(*) as backends, current_user as role_name "
            "from pg_catalog.pg_stat_activity as a "
            "where a.datname = current_database() and a.pid <> pg_backend_pid() "
            "and a.usesysid is not null")


def _age(column: str) -> str:
    return f"round(extract(epoch from clock_timestamp() - {column})::numeric, 1)::float8"


def _older(column: str, seconds: float) -> str:
    return f"{column} < clock_timestamp() - {_number(seconds)} * interval '1 second'"


def idle_in_transaction_sql(max_age: float) -> str:
    return ("select a.pid, a.usename, a.application_name, a.state, "
            f"{_age('a.state_change')} as idle_seconds, "
            f"{_age('a.xact_start')} as transaction_seconds, left(a.query, 200) as query "
            "from pg_catalog.pg_stat_activity as a "
            "where a.datname = current_database() and a.pid <> pg_backend_pid() "
            "and a.state in ('idle in transaction', 'idle in transaction (aborted)') "
            f"and {_older('a.state_change', max_age)} "
            "order by a.state_change")


def advisory_locks_sql(idle_for: float, key: int | list[int] | None,
                       include_idle: bool) -> str:
    states = ["'idle in transaction'", "'idle in transaction (aborted)'"]
    states += ["'idle'"] if include_idle else []
    return ("select l.pid, a.usename, a.application_name, a.state, "
            f"{_age('a.state_change')} as idle_seconds, l.mode, "
            "l.classid::bigint as classid, l.objid::bigint as objid, l.objsubid, "
            "(select count(*) from pg_catalog.pg_locks as w where w.locktype = 'advisory' "
            "and not w.granted and w.database = l.database and w.classid = l.classid "
            "and w.objid = l.objid and w.objsubid = l.objsubid) as waiting "
            "from pg_catalog.pg_locks as l "
            "join pg_catalog.pg_stat_activity as a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted "
            "and l.database = (select d.oid from pg_catalog.pg_database as d "
            "where d.datname = current_database()) "
            f"and l.pid <> pg_backend_pid() and a.state in ({', '.join(states)}) "
            f"and {_older('a.state_change', idle_for)}{_key_filter(key)} "
            "order by a.state_change, l.pid")


def _key_filter(key: int | list[int] | None) -> str:
    """``pg_locks`` columns of an advisory key: a bigint is split into classid/objid."""
    if key is None:
        return ""
    if isinstance(key, int):
        classid, objid, subid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF, 1
    else:
        classid, objid, subid = key[0] & 0xFFFFFFFF, key[1] & 0xFFFFFFFF, 2
    return f" and l.classid = {classid} and l.objid = {objid} and l.objsubid = {subid}"


def lock_waits_sql(max_wait: float) -> str:
    waited = "coalesce(w.waitstart, clock_timestamp())"
    return ("select a.pid, a.usename, a.application_name, a.wait_event, "
            f"{_age(waited)} as waiting_seconds, "
            "pg_blocking_pids(a.pid) as blocking_pids, "
            "(select string_agg(b.pid || ' ' || coalesce(b.state, '?') || ' ' || "
            "coalesce(b.application_name, ''), '; ' order by b.pid) "
            "from pg_catalog.pg_stat_activity as b "
            "where b.pid = any(pg_blocking_pids(a.pid))) as blockers, "
            "left(a.query, 200) as query "
            "from pg_catalog.pg_stat_activity as a "
            "cross join lateral (select min(l.waitstart) as waitstart "
            "from pg_catalog.pg_locks as l where l.pid = a.pid and not l.granted) as w "
            "where a.datname = current_database() and a.pid <> pg_backend_pid() "
            f"and a.wait_event_type = 'Lock' and {_older(waited, max_wait)} "
            f"order by {waited}")


def _setting_level(database: str, role: str) -> str:
    """The ``default_transaction_read_only`` text set for (database, role), or NULL."""
    return ("(select substr(c, strpos(c, '=') + 1) "
            "from pg_catalog.pg_db_role_setting as s, unnest(s.setconfig) as c "
            f"where s.setdatabase = {database} and s.setrole = {role} "
            f"and split_part(c, '=', 1) = '{SETTING}' limit 1)")


def writable_sql(role: str | None) -> str:
    """One row: recovery, every per-database/role level, and whether files are readable."""
    database = ("(select d.oid from pg_catalog.pg_database as d "
                "where d.datname = current_database())")
    parts = ["pg_is_in_recovery() as in_recovery"]
    if role:
        oid = ("(select r.oid from pg_catalog.pg_roles as r "
               f"where r.rolname = {quote_literal(role)})")
        parts += [f"{_setting_level(database, oid)} as role_in_database",
                  f"{_setting_level('0', oid)} as role",
                  f"{oid} is not null as role_exists"]
    parts += [f"{_setting_level(database, '0')} as database",
              f"{_setting_level('0', '0')} as all_roles",
              "has_table_privilege('pg_catalog.pg_file_settings', 'select') and "
              "has_function_privilege('pg_catalog.pg_show_all_file_settings()', 'execute') "
              "as can_read_server_files",
              "current_user as opsgate_role"]
    return "select " + ", ".join(parts)


def server_setting_sql() -> str:
    return ("select (select f.setting from pg_catalog.pg_file_settings as f "
            f"where f.name = '{SETTING}' and f.applied order by f.seqno desc limit 1) "
            "as server")


def migration_sql(tool: str, table: str, column: str, order_by: str | None) -> str:
    """One row: ``version`` (text or NULL) and, for flyway and prisma, ``failed``."""
    source, value = f"{quote_qualified(table)} as t", f"t.{quote_identifier(column)}::text"
    if tool == "flyway":
        return (f"select (select {value} from {source} where t.\"success\" and "
                f"t.{quote_identifier(column)} is not null order by t.\"installed_rank\" desc "
                f"limit 1) as version, (select count(*) from {source} where not t.\"success\") "
                "as failed")
    if tool == "prisma":
        return (f"select (select {value} from {source} where t.\"finished_at\" is not null and "
                f"t.\"rolled_back_at\" is null order by {value} desc limit 1) as version, "
                f"(select count(*) from {source} where t.\"finished_at\" is null and "
                "t.\"rolled_back_at\" is null) as failed")
    if order_by:
        return (f"select (select {value} from {source} order by "
                f"t.{quote_identifier(order_by)} desc limit 1) as version, "
                f"(select count(*) from {source}) as row_count")
    return (f"select string_agg({value}, ',' order by {value}) as version, "
            f"count(*) as row_count from {source}")


# ---------------------------------------------------------------- measuring
def measure_reachable(check: PostgresCheck, ctx: Context, seconds: float) -> Observation:
    observation = ctx.sql_scalar(check.database, reachable_sql(), seconds, label="select 1")
    observation.fields["latency_ms"] = observation.seen.get("elapsed_ms")
    return observation


def measure_saturation(check: PostgresCheck, ctx: Context, seconds: float) -> Observation:
    return ctx.sql_scalar(check.database, saturation_sql(), seconds,
                          label="client sessions / max_connections")


def measure_sessions(check: PostgresCheck, ctx: Context, seconds: float) -> Observation:
    """Refuse to judge when sessions are hidden; then count and sample the violators."""
    seen = ctx.sql_scalar(check.database, visibility_sql(), seconds, label="hidden_backends")
    row = seen.seen["rows"][0]
    if row["hidden_backends"]:
        raise NoData(f"{row['hidden_backends']} of {row['backends']} sessions of this database "
                     f"are hidden from role {row['role_name']!r} in pg_stat_activity (their "
                     "query reads '<insufficient privilege>'), so they cannot be judged; grant "
                     "the role pg_monitor (or pg_read_all_stats)",
                     asked=seen.asked, seen=seen.seen)
    sql = {"idle_in_transaction": lambda: idle_in_transaction_sql(check.max_age),
           "advisory_locks": lambda: advisory_locks_sql(check.idle_for, check.key,
                                                        check.include_idle),
           "lock_waits": lambda: lock_waits_sql(check.max_wait)}[check.check]()
    observation = ctx.sql_violations(check.database, sql, check.sample, seconds)
    observation.asked["visibility_sql"] = seen.asked.get("sql")
    observation.seen["backends_visible"] = row["backends"]
    if check.check == "advisory_locks":
        observation.seen["rows"] = [with_key(r) for r in observation.seen.get("rows", [])]
    return observation


def with_key(row: dict[str, Any]) -> dict[str, Any]:
    """An advisory lock row with the key as the application passed it."""
    classid, objid = int(row["classid"]), int(row["objid"])
    if row.get("objsubid") == 1:
        key: Any = _signed((classid << 32) | objid, 64)
    else:
        key = [_signed(classid, 32), _signed(objid, 32)]
    return {"lock_id": key, **row}


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def measure_mode(check: PostgresCheck, ctx: Context, seconds: float) -> Observation:
    observation = ctx.sql_scalar(check.database, writable_sql(check.role), seconds,
                                 label="in_recovery")
    row = observation.seen["rows"][0]
    if check.role and not row["role_exists"]:
        raise NoData(f"role {check.role!r} does not exist on this server",
                     asked=observation.asked, seen=observation.seen)
    levels = {name: row[name] for name in ("role_in_database", "role", "database", "all_roles")
              if name in row}
    if not row["in_recovery"] and not any(v is not None for v in levels.values()):
        levels["server"] = _server_level(check, ctx, seconds, row, observation)
    mode, source = resolve_mode(bool(row["in_recovery"]), levels)
    observation.fields.update({"mode": mode})
    observation.seen.update({"mode": mode, "decided_by": source, "levels": levels})
    return observation


def _server_level(check: PostgresCheck, ctx: Context, seconds: float, row: dict[str, Any],
                  observation: Observation) -> str | None:
    """The server-wide value (files, ALTER SYSTEM); NULL means the built-in default, off."""
    if row["can_read_server_files"]:
        server = ctx.sql_scalar(check.database, server_setting_sql(), seconds, label="server")
        observation.asked["server_sql"] = server.asked.get("sql")
        return server.fields.get("value") or "off"
    if check.ignore_server_setting:
        observation.seen["server_level"] = "not visible; ignored (ignore_server_setting: true)"
        return "off"
    raise NoData(f"no database or role setting decides {SETTING}, and the server-wide value "
                 f"(configuration files, ALTER SYSTEM) is not visible to role "
                 f"{row['opsgate_role']!r}: pg_file_settings is readable by superusers only, "
                 "and opsgate's own session overrides the setting at startup. Grant SELECT on "
                 "pg_file_settings and EXECUTE on pg_show_all_file_settings() to the role, or "
                 "set ignore_server_setting: true to accept the blind spot",
                 asked=observation.asked, seen=observation.seen)


def resolve_mode(in_recovery: bool, levels: dict[str, str | None]) -> tuple[str, str]:
    """The mode and the level that decided it, the highest level set winning."""
    if in_recovery:
        return "replica", "pg_is_in_recovery()"
    for name in ("role_in_database", "role", "database", "all_roles", "server"):
        value = levels.get(name)
        if value is not None:
            return ("read_only" if parse_bool(value) else "primary"), name
    return "primary", "default"


def parse_bool(text: str) -> bool:
    """PostgreSQL's boolean spelling: on/off, true/false, yes/no, 1/0 and unique prefixes."""
    word = text.strip().lower()
    if word in ("1", "on") or (word and ("true".startswith(word) or "yes".startswith(word))):
        return True
    if word in ("0", "off", "of") or (word and ("false".startswith(word)
                                                or "no".startswith(word))):
        return False
    raise NoData(f"cannot read {SETTING} = {text!r} as a boolean")


def measure_migration(check: PostgresCheck, ctx: Context, seconds: float) -> Observation:
    table, column = check.version_source
    observation = ctx.sql_scalar(check.database,
                                 migration_sql(check.tool, table, column, check.order_by),
                                 seconds, label=f"{table}.{column}")
    row = observation.seen["rows"][0]
    observation.asked["tool"] = check.tool
    if row["version"] is None and check.condition.op != "exists":
        raise NoData(f"{table} records no applied migration ({check.tool})",
                     asked=observation.asked, seen=observation.seen)
    observation.fields["failed"] = row.get("failed")
    return observation


MEASURES = {
    "reachable": measure_reachable,
    "connection_saturation": measure_saturation,
    "idle_in_transaction": measure_sessions,
    "advisory_locks": measure_sessions,
    "lock_waits": measure_sessions,
    "writable": measure_mode,
    "read_only": measure_mode,
    "migration_version": measure_migration,
}


def violations_label(check: PostgresCheck) -> str:
    if check.check == "idle_in_transaction":
        return f"sessions idle in transaction for over {format_duration(check.max_age)}"
    if check.check == "advisory_locks":
        held = "idle or idle in transaction" if check.include_idle else "idle in transaction"
        return f"advisory locks held by sessions {held} for over {format_duration(check.idle_for)}"
    return f"sessions waiting for a lock for over {format_duration(check.max_wait)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


MODEL = PostgresCheck
