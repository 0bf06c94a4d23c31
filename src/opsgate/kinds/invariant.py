"""``kind: invariant``: ready-made data invariants configured by table and column names.

Each ``rule`` generates one query from validated, double-quoted identifiers (see
``opsgate.sqlnames``) for PostgreSQL or SQLite. The database aggregates and returns only the
violators; ``Context.sql_violations`` wraps the query so one round trip brings the total and at
most ``sample`` rows. Nothing is pulled into Python to be compared.

Rules (catalog ids in brackets):

- ``sum_matches`` [D1]: parents whose ``value`` differs from the sum of their children's
  ``value`` by more than ``tolerance``; a parent without children compares against 0, a NULL
  parent value is a violation. Children without a parent are ``no_orphans``' business.
- ``snapshot_matches`` [D2]: each snapshot row (distinct key, period, value) must equal the sum
  of the entries whose ``time`` falls before the end of the snapshot's month. ``period`` is a
  date or timestamp anywhere in the month (the first day by convention); entries are summed per
  month in the database, then cumulated. PostgreSQL cuts months in the session's time zone
  (the server's ``TimeZone``); SQLite needs ISO-8601 text (``YYYY-MM-DD[ HH:MM:SS]``, which
  ``date()`` reads, converting an explicit offset to UTC); entries with a NULL or unreadable
  time are not counted.
- ``no_orphans`` [D4]: every non-NULL ``child.key`` exists in ``parent.key``; one violation per
  missing key value, with the number of child rows carrying it. "Every transaction has ledger
  entries" is the same rule with ``child: transactions.id`` and ``parent: ledger_entries.
  transaction_id``.
- ``no_duplicates`` [D5, D6]: groups of ``columns`` (all non-NULL, as a unique index sees them)
  that occur more than once, largest first.
- ``append_only`` [D3], one of: ``updated_column`` (rows with ``updated <> created`` or an
  update time without a creation time); ``contiguous_id`` (gaps between consecutive ids: a
  deleted row; PostgreSQL sequences also leave gaps on rolled-back inserts, so use it only
  where ids are assigned without gaps); ``roles`` (PostgreSQL: none of these roles may
  UPDATE, DELETE or TRUNCATE the table, measured with ``has_table_privilege``; a superuser or
  owner always can, and a missing role is reported as a violation). A trigger is not checked:
  its presence does not prove what it does.
- ``consistent_totals`` [D8]: ``sum(left.value)`` and ``sum(right.value)`` (or row counts when
  ``value`` is omitted), each with its own ``where``, differ by at most ``tolerance``.
- ``count`` [Q5, Q6]: ``count(*)`` of ``table`` (with ``where``) against ``expect``; with
  ``group_by`` the groups come back largest first (at most ``sample``) and ``expect`` judges the
  largest group (0 when there is none).

``mask`` [D9] names columns whose values must not leave the check: every sampled column that
is, or is computed from, a masked column (a sum of ``amount``, a difference with ``balance``)
reads ``[MASKED]``; a NULL stays NULL. A hash prefix was rejected: amounts have so few likely
values that an unsalted hash gives them back. ``where`` is user SQL: it must fit the conservative
form ``opsgate.sqlnames.validate_where`` allows (it cannot close the parentheses it is wrapped
in) and pass the SQL guard as ``select 1 where (EXPRESSION)``, both at load time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from opsgate.conditions import Condition
from opsgate.config.base import CheckBase, ConditionText, Pair, Reference, Strict
from opsgate.errors import ProbeError
from opsgate.sqlnames import (
    Identifier,
    QualifiedName,
    WhereClause,
    quote_identifier,
    quote_literal,
    quote_qualified,
)

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation
    from opsgate.runner import Context

Dialect = Literal["postgresql", "sqlite"]
Rule = Literal["sum_matches", "snapshot_matches", "no_orphans", "no_duplicates", "append_only",
               "consistent_totals", "count"]
MASKED = "[MASKED]"
NO_VIOLATIONS = Condition.parse("== 0")
PRIVILEGES = ("UPDATE", "DELETE", "TRUNCATE")

#: Fields every rule accepts besides its own.
COMMON = frozenset({*CheckBase.model_fields, "kind", "rule", "database", "sample", "mask"})
#: Per rule: (required fields, optional fields).
RULE_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "sum_matches": (frozenset({"parent", "children"}), frozenset({"tolerance"})),
    "snapshot_matches": (frozenset({"snapshot", "entries"}), frozenset({"tolerance"})),
    "no_orphans": (frozenset({"child", "parent"}), frozenset()),
    "no_duplicates": (frozenset({"table", "columns"}), frozenset({"where"})),
    "append_only": (frozenset({"table"}),
                    frozenset({"updated_column", "created_column", "contiguous_id", "roles",
                               "key", "where"})),
    "consistent_totals": (frozenset({"left", "right"}), frozenset({"tolerance"})),
    "count": (frozenset({"table", "expect"}), frozenset({"where", "group_by"})),
}
#: Per (rule, relation field): (required keys, optional keys) besides ``table``.
RELATION_KEYS: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {
    ("sum_matches", "parent"): (frozenset({"key", "value"}), frozenset({"where"})),
    ("sum_matches", "children"): (frozenset({"key", "value"}), frozenset({"where"})),
    ("snapshot_matches", "snapshot"): (frozenset({"key", "period", "value"}),
                                       frozenset({"where"})),
    ("snapshot_matches", "entries"): (frozenset({"key", "value", "time"}), frozenset({"where"})),
    ("no_orphans", "child"): (frozenset({"key"}), frozenset({"where"})),
    ("no_orphans", "parent"): (frozenset({"key"}), frozenset({"where"})),
    ("consistent_totals", "left"): (frozenset(), frozenset({"value", "where"})),
    ("consistent_totals", "right"): (frozenset(), frozenset({"value", "where"})),
}


class Relation(Strict):
    """A table and the columns a rule reads from it."""

    table: QualifiedName
    key: Identifier | None = None
    value: Identifier | None = None
    time: Identifier | None = None
    period: Identifier | None = None
    where: WhereClause | None = None


@dataclass(frozen=True)
class Query:
    """Generated SQL and its output columns, each with the configured columns it comes from."""

    sql: str
    outputs: tuple[tuple[str, frozenset[str]], ...]

    @property
    def lineage(self) -> dict[str, frozenset[str]]:
        return dict(self.outputs)


class InvariantCheck(CheckBase):
    kind: Literal["invariant"]
    rule: Rule
    database: str | None = None
    sample: Annotated[int, Field(ge=1, le=100)] = 10
    mask: list[Identifier] = []
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    parent: Relation | None = None
    children: Relation | None = None
    snapshot: Relation | None = None
    entries: Relation | None = None
    child: Relation | None = None
    left: Relation | None = None
    right: Relation | None = None
    table: QualifiedName | None = None
    columns: Annotated[list[Identifier], Field(min_length=1)] | None = None
    group_by: Annotated[list[Identifier], Field(min_length=1)] | None = None
    where: WhereClause | None = None
    updated_column: Identifier | None = None
    created_column: Identifier | None = None
    contiguous_id: Identifier | None = None
    roles: Annotated[list[Identifier], Field(min_length=1)] | None = None
    key: Identifier | None = None
    expect: ConditionText | None = None

    @model_validator(mode="after")
    def _fits_rule(self) -> InvariantCheck:
        problems = rule_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        build_query(self, "postgresql" if self.roles else "sqlite")  # output names must differ
        return self

    # ------------------------------------------------------------ CheckBase
    def references(self) -> list[Reference]:
        return [Reference(("database",), "databases", self.database)]

    def target_problems(self, targets: Targets) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems only the targets reveal (for the loader's cross-check)."""
        target = targets.declared_database(self.database)
        name = self.database or (targets.database_name() if target else None)
        if self.roles and target is not None and not target.is_postgres:
            return [(("roles",), f"append_only with 'roles' reads PostgreSQL privileges; "
                     f"database {name!r} is not PostgreSQL (use updated_column or contiguous_id)")]
        return []

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        return targets.database(self.database).budget()

    def measure(self, ctx: Context) -> Observation:
        name = ctx.database_name(self.database)
        dialect: Dialect = "postgresql" if ctx.targets.databases[name].is_postgres else "sqlite"
        problems = self.target_problems(ctx.targets)
        if problems:
            raise ProbeError(problems[0][1])
        query = build_query(self, dialect)
        seconds = self.budget(ctx.targets)
        if self.rule == "count" and not self.group_by:
            observation = ctx.sql_scalar(self.database, query.sql, seconds, label="count")
            return annotate(observation, self, query, dialect)
        observation = ctx.sql_violations(self.database, query.sql, self.sample, seconds)
        if self.rule == "count":  # judged before any masking
            rows = observation.seen.get("rows") or []
            observation.fields["largest"] = rows[0]["row_count"] if rows else 0
        return annotate(observation, self, query, dialect)

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        label = describe(self)
        if self.rule == "count":
            assert self.expect is not None
            value = observation.fields.get("largest" if self.group_by else "value")
            yield Pair(label, value, self.expect)
            return
        yield Pair(label, observation.fields.get("violations"), NO_VIOLATIONS)


# ---------------------------------------------------------------- validation
def rule_problems(check: InvariantCheck) -> list[str]:
    """What does not fit the chosen rule: missing, misplaced or contradictory fields."""
    required, optional = RULE_FIELDS[check.rule]
    given = {name for name in check.model_fields_set if name not in COMMON}
    problems = [f"rule {check.rule} needs '{name}'" for name in sorted(required - given)]
    problems += [f"'{name}' does not apply to rule {check.rule} (it takes: "
                 f"{', '.join(sorted(required | optional))})"
                 for name in sorted(given - required - optional)]
    for field in sorted(required | optional):
        relation = getattr(check, field, None)
        if isinstance(relation, Relation):
            problems += relation_problems(check.rule, field, relation)
    if check.rule == "append_only":
        problems += append_only_problems(check)
    return problems


def relation_problems(rule: str, field: str, relation: Relation) -> list[str]:
    required, optional = RELATION_KEYS[(rule, field)]
    given = {name for name in relation.model_fields_set if name != "table"}
    problems = [f"{field}.{name} is required for rule {rule}" for name in sorted(required - given)]
    problems += [f"{field}.{name} does not apply to rule {rule} (it takes: table, "
                 f"{', '.join(sorted(required | optional))})"
                 for name in sorted(given - required - optional)]
    return problems


def append_only_problems(check: InvariantCheck) -> list[str]:
    modes = [name for name in ("updated_column", "contiguous_id", "roles")
             if getattr(check, name) is not None]
    if len(modes) != 1:
        return ["rule append_only takes exactly one of 'updated_column' (rows never updated), "
                "'contiguous_id' (no deleted rows) or 'roles' (PostgreSQL: no UPDATE/DELETE/"
                "TRUNCATE privilege)"]
    if check.created_column is not None and modes[0] != "updated_column":
        return ["'created_column' goes with 'updated_column'"]
    if check.where is not None and modes[0] == "roles":
        return ["'where' does not apply to append_only with 'roles'"]
    return []


# ---------------------------------------------------------------- SQL
def build_query(check: InvariantCheck, dialect: Dialect) -> Query:
    """The violations (or, for ``count`` without ``group_by``, scalar) query of ``check``."""
    builder = {
        "sum_matches": sum_matches_sql, "snapshot_matches": snapshot_matches_sql,
        "no_orphans": no_orphans_sql, "no_duplicates": no_duplicates_sql,
        "append_only": append_only_sql, "consistent_totals": consistent_totals_sql,
        "count": count_sql,
    }[check.rule]
    query = builder(check, dialect)
    names = [name for name, _ in query.outputs]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise ValueError(f"the sampled columns would share a name ({', '.join(clashes)}); "
                         "name different columns")
    return query


def sum_matches_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    parent, children = _need(check.parent), _need(check.children)
    pk, pv = q(parent.key), q(parent.value)
    difference = f"coalesce(p.{pv}, 0) - coalesce(c.children_sum, 0)"
    sql = (f"select p.{pk} as {pk}, p.{pv} as {pv}, coalesce(c.children_sum, 0) as children_sum, "
           f"{difference} as difference "
           f"from {quote_qualified(parent.table)} as p "
           f"left join (select {q(children.key)} as parent_key, sum({q(children.value)}) as "
           f"children_sum from {quote_qualified(children.table)}{_where(children.where)} "
           f"group by {q(children.key)}) as c on c.parent_key = p.{pk} "
           f"where {_and(parent.where)}(p.{pv} is null or abs({difference}) > "
           f"{_number(check.tolerance)}) "
           f"order by p.{pk}")
    return Query(sql, ((_name(parent.key), _cols(parent.key)),
                       (_name(parent.value), _cols(parent.value)),
                       ("children_sum", _cols(children.value)),
                       ("difference", _cols(parent.value, children.value))))


def snapshot_matches_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    snapshot, entries = _need(check.snapshot), _need(check.entries)
    sk, sp, sv = q(snapshot.key), q(snapshot.period), q(snapshot.value)
    month = _month_start(f"e.{q(entries.time)}", dialect)
    period_end = _month_end(f"s.{sp}", dialect)
    ledger = "coalesce(sum(m.month_sum), 0)"
    sql = (f"select s.{sk} as {sk}, s.{sp} as {sp}, s.{sv} as {sv}, {ledger} as ledger_sum, "
           f"coalesce(s.{sv}, 0) - {ledger} as difference "
           f"from (select distinct {sk}, {sp}, {sv} from {quote_qualified(snapshot.table)}"
           f"{_where(snapshot.where)}) as s "
           f"left join (select e.{q(entries.key)} as entry_key, {month} as month_start, "
           f"sum(e.{q(entries.value)}) as month_sum "
           f"from {quote_qualified(entries.table)} as e{_where(entries.where)} "
           f"group by e.{q(entries.key)}, {month}) as m "
           f"on m.entry_key = s.{sk} and m.month_start < {period_end} "
           f"group by s.{sk}, s.{sp}, s.{sv} "
           f"having s.{sv} is null or abs(s.{sv} - {ledger}) > {_number(check.tolerance)} "
           f"order by s.{sk}, s.{sp}")
    return Query(sql, ((_name(snapshot.key), _cols(snapshot.key)),
                       (_name(snapshot.period), _cols(snapshot.period)),
                       (_name(snapshot.value), _cols(snapshot.value)),
                       ("ledger_sum", _cols(entries.value)),
                       ("difference", _cols(snapshot.value, entries.value))))


def _month_start(expression: str, dialect: Dialect) -> str:
    if dialect == "postgresql":
        return f"date_trunc('month', {expression})"
    return f"date({expression}, 'start of month')"


def _month_end(expression: str, dialect: Dialect) -> str:
    if dialect == "postgresql":
        return f"(date_trunc('month', {expression}) + interval '1 month')"
    return f"date({expression}, 'start of month', '+1 month')"


def no_orphans_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    child, parent = _need(check.child), _need(check.parent)
    ck = q(child.key)
    sql = (f"select c.{ck} as {ck}, count(*) as child_rows "
           f"from {quote_qualified(child.table)} as c "
           f"where {_and(child.where)}c.{ck} is not null and not exists (select 1 from "
           f"{quote_qualified(parent.table)} as p where {_and(parent.where)}"
           f"p.{q(parent.key)} = c.{ck}) "
           f"group by c.{ck} order by c.{ck}")
    return Query(sql, ((_name(child.key), _cols(child.key)), ("child_rows", frozenset())))


def no_duplicates_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    table, columns = _need(check.table), _need(check.columns)
    quoted = [f"t.{q(column)}" for column in columns]
    selected = ", ".join(f"{column} as {q(name)}" for column, name in zip(quoted, columns,
                                                                           strict=True))
    not_null = " and ".join(f"{column} is not null" for column in quoted)
    sql = (f"select {selected}, count(*) as copies from {quote_qualified(table)} as t "
           f"where {_and(check.where)}{not_null} "
           f"group by {', '.join(quoted)} having count(*) > 1 "
           f"order by count(*) desc, {', '.join(quoted)}")
    return Query(sql, (*((name, _cols(name)) for name in columns), ("copies", frozenset())))


def append_only_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    if check.roles:
        return _privileges_sql(_need(check.table), check.roles)
    if check.contiguous_id:
        return _gaps_sql(_need(check.table), check.contiguous_id, check.where)
    return _updated_sql(check)


def _updated_sql(check: InvariantCheck) -> Query:
    table, updated = _need(check.table), _need(check.updated_column)
    created = check.created_column or "created_at"
    columns = [name for name in (check.key, created, updated) if name]
    selected = ", ".join(f"t.{q(name)} as {q(name)}" for name in columns)
    sql = (f"select {selected} from {quote_qualified(table)} as t "
           f"where {_and(check.where)}t.{q(updated)} is not null and "
           f"(t.{q(created)} is null or t.{q(updated)} <> t.{q(created)}) "
           f"order by t.{q(updated)} desc")
    return Query(sql, tuple((name, _cols(name)) for name in columns))


def _gaps_sql(table: str, column: str, where: str | None) -> Query:
    ident = q(column)
    sql = (f"select previous_id, next_id, next_id - previous_id - 1 as missing from ("
           f"select t.{ident} as previous_id, lead(t.{ident}) over (order by t.{ident}) as "
           f"next_id from {quote_qualified(table)} as t{_where(where)}) as g "
           f"where next_id > previous_id + 1 order by previous_id")
    return Query(sql, (("previous_id", _cols(column)), ("next_id", _cols(column)),
                       ("missing", frozenset())))


def _privileges_sql(table: str, roles: list[str]) -> Query:
    wanted = ", ".join(f"({quote_literal(role)})" for role in roles)
    privileges = ", ".join(f"({quote_literal(name)})" for name in PRIVILEGES)
    target = quote_literal(quote_qualified(table))
    sql = (f"select w.role_name as role_name, case when r.oid is null then 'role does not exist' "
           f"else p.privilege end as privilege "
           f"from (values {wanted}) as w(role_name) "
           f"left join pg_catalog.pg_roles as r on r.rolname = w.role_name "
           f"cross join (values {privileges}) as p(privilege) "
           f"where (r.oid is null and p.privilege = 'UPDATE') or "
           f"(r.oid is not null and has_table_privilege(r.oid, {target}, p.privilege)) "
           f"order by w.role_name, p.privilege")
    return Query(sql, (("role_name", frozenset()), ("privilege", frozenset())))


def consistent_totals_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    left, right = _need(check.left), _need(check.right)
    sql = (f"select l.total as left_total, r.total as right_total, "
           f"l.total - r.total as difference from {_total(left)} as l cross join "
           f"{_total(right)} as r where abs(l.total - r.total) > {_number(check.tolerance)}")
    return Query(sql, (("left_total", _cols(left.value)), ("right_total", _cols(right.value)),
                       ("difference", _cols(left.value, right.value))))


def _total(side: Relation) -> str:
    aggregate = f"coalesce(sum(t.{q(side.value)}), 0)" if side.value else "count(*)"
    return (f"(select {aggregate} as total from {quote_qualified(side.table)} as t"
            f"{_where(side.where)})")


def count_sql(check: InvariantCheck, dialect: Dialect) -> Query:
    table = quote_qualified(_need(check.table))
    if not check.group_by:
        return Query(f"select count(*) as row_count from {table} as t{_where(check.where)}",
                     (("row_count", frozenset()),))
    quoted = [f"t.{q(column)}" for column in check.group_by]
    selected = ", ".join(f"{column} as {q(name)}"
                         for column, name in zip(quoted, check.group_by, strict=True))
    sql = (f"select {selected}, count(*) as row_count from {table} as t{_where(check.where)} "
           f"group by {', '.join(quoted)} order by count(*) desc, {', '.join(quoted)}")
    return Query(sql, (*((name, _cols(name)) for name in check.group_by),
                       ("row_count", frozenset())))


def q(name: str | None) -> str:
    """A quoted column name (validation guarantees it is there)."""
    return quote_identifier(_need(name))


def _name(name: str | None) -> str:
    return _need(name)


def _cols(*names: str | None) -> frozenset[str]:
    return frozenset(name for name in names if name)


def _need(value: Any) -> Any:
    if value is None:  # rule_problems rejects this at load time
        raise ValueError("a required field is missing")
    return value


def _where(where: str | None) -> str:
    return f" where ({where})" if where else ""


def _and(where: str | None) -> str:
    return f"({where}) and " if where else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ---------------------------------------------------------------- evidence
def masked_columns(query: Query, mask: Iterable[str]) -> set[str]:
    """Output columns that are, or are computed from, a masked column."""
    hidden = set(mask)
    return {name for name, sources in query.lineage.items() if name in hidden or sources & hidden}


def mask_rows(rows: list[dict[str, Any]], columns: set[str]) -> list[dict[str, Any]]:
    """``rows`` with the values of ``columns`` replaced by ``[MASKED]`` (NULL stays NULL)."""
    return [{name: MASKED if name in columns and value is not None else value
             for name, value in row.items()} for row in rows]


def annotate(observation: Observation, check: InvariantCheck, query: Query,
             dialect: Dialect) -> Observation:
    """Record the rule and dialect; mask sampled values before the observation leaves."""
    observation.asked.update({"rule": check.rule, "dialect": dialect})
    hidden = masked_columns(query, check.mask)
    if hidden:
        if isinstance(observation.seen.get("rows"), list):
            observation.seen["rows"] = mask_rows(observation.seen["rows"], hidden)
        observation.seen["masked"] = sorted(hidden)
    return observation


def describe(check: InvariantCheck) -> str:
    """A short label for the judged value, e.g. ``accounts.balance != sum(ledger.amount)``."""
    if check.rule == "sum_matches":
        p, c = _need(check.parent), _need(check.children)
        return f"{p.table}.{p.value} != sum({c.table}.{c.value})"
    if check.rule == "snapshot_matches":
        s, e = _need(check.snapshot), _need(check.entries)
        return f"{s.table}.{s.value} != sum({e.table}.{e.value}) through the period"
    if check.rule == "no_orphans":
        c, p = _need(check.child), _need(check.parent)
        return f"{c.table}.{c.key} missing from {p.table}.{p.key}"
    if check.rule == "no_duplicates":
        return f"duplicate ({', '.join(_need(check.columns))}) in {check.table}"
    if check.rule == "append_only":
        if check.roles:
            return f"UPDATE/DELETE/TRUNCATE grants on {check.table}"
        if check.contiguous_id:
            return f"gaps in {check.table}.{check.contiguous_id}"
        return f"{check.table} rows updated after creation"
    if check.rule == "consistent_totals":
        return f"{_side(_need(check.left))} != {_side(_need(check.right))}"
    if check.group_by:
        return f"largest group of {check.table} by ({', '.join(check.group_by)})"
    return f"count of {check.table}"


def _side(side: Relation) -> str:
    return f"sum({side.table}.{side.value})" if side.value else f"count({side.table})"


MODEL = InvariantCheck
