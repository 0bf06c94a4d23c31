"""Generated SQL of ``kind: invariant`` and ``kind: postgres``, and identifier validation.

No database here: the text of the generated queries, what the SQL guard says about them, how
names and ``where`` expressions are validated, masking, and the rules' configuration errors.
The same queries run against real PostgreSQL and SQLite in tests/integration.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import pytest
from pydantic import ValidationError

from opsgate.config import load_environment
from opsgate.config.sqlguard import check_read_only
from opsgate.config.targets import Targets
from opsgate.errors import ConfigError, NoData
from opsgate.kinds import invariant, postgres
from opsgate.kinds.invariant import InvariantCheck, build_query, mask_rows, masked_columns
from opsgate.kinds.postgres import PostgresCheck
from opsgate.sqlnames import (
    quote_identifier,
    quote_literal,
    quote_qualified,
    validate_identifier,
    validate_qualified,
    validate_where,
)

LEDGER = {"table": "ledger_entries", "key": "account_id", "value": "amount"}
ACCOUNTS = {"table": "accounts", "key": "id", "value": "balance"}
RULES: dict[str, dict[str, Any]] = {
    "sum_matches": {"parent": ACCOUNTS, "children": LEDGER, "tolerance": 0},
    "snapshot_matches": {
        "snapshot": {"table": "monthly_snapshots", "key": "account_id", "period": "month",
                     "value": "balance"},
        "entries": {**LEDGER, "time": "created_at"}, "tolerance": 0.01},
    "no_orphans": {"child": {"table": "ledger_entries", "key": "account_id"},
                   "parent": {"table": "public.accounts", "key": "id"}},
    "no_duplicates": {"table": "payments", "columns": ["provider", "provider_ref"],
                      "where": "status <> 'void'"},
    "append_only": {"table": "ledger_entries", "updated_column": "updated_at", "key": "id"},
    "consistent_totals": {"left": {"table": "payouts", "value": "amount",
                                   "where": "status = 'paid'"},
                          "right": {"table": "exports", "value": "amount"}},
    "count": {"table": "dead_letters", "group_by": ["reason"], "expect": "<= 5"},
}


def invariant_check(rule: str, **fields: Any) -> InvariantCheck:
    return InvariantCheck.model_validate({"id": "X", "title": "t", "kind": "invariant",
                                          "rule": rule, **fields})


def postgres_check(check: str, **fields: Any) -> PostgresCheck:
    return PostgresCheck.model_validate({"id": "X", "title": "t", "kind": "postgres",
                                         "check": check, **fields})


# ---------------------------------------------------------------- identifiers
@pytest.mark.parametrize("name", ["accounts", "_x", "Ledger2", "a" * 63, "order", "user"])
def test_plain_identifiers_are_accepted_and_quoted(name):
    assert validate_identifier(name) == name
    assert quote_identifier(name) == f'"{name}"'


@pytest.mark.parametrize("name", ["", "1st", "two words", 'quo"te', "semi;colon", "a.b",
                                  "a-b", "é", "x" * 64, "--", "a)", 3, None])
def test_anything_else_is_rejected(name):
    with pytest.raises(ValueError, match=r"identifier|string|longer"):
        validate_identifier(name)


def test_qualified_names_take_one_dot_and_quote_each_part():
    assert validate_qualified("public.accounts") == "public.accounts"
    assert quote_qualified("public.accounts") == '"public"."accounts"'
    assert quote_qualified("accounts") == '"accounts"'
    for bad in ("a.b.c", "public.", ".x", "public.two words", 'x"."y'):
        with pytest.raises(ValueError):
            validate_qualified(bad)


def test_literals_double_quotes_and_refuse_backslashes():
    assert quote_literal("it's") == "'it''s'"
    with pytest.raises(ValueError):
        quote_literal("a\\'b")


@pytest.mark.parametrize("expression", [
    "status = 'failed'", "amount > 0 and (reason is null or reason <> 'x;y')",
    "created_at >= now() - interval '1 hour'", "x::int > 2",
    "exists (select 1 from refunds r where r.payment_id = id)", '"order" = 1',
])
def test_where_accepts_boolean_expressions(expression):
    assert validate_where(expression) == expression


@pytest.mark.parametrize("expression, reason", [
    ("1=1) or (1=1", "closes a parenthesis"),
    ("(a = 1", "leaves a parenthesis open"),
    ("a = 1; delete from t", "statement separator"),
    ("a = 1 -- comment", "comment"),
    ("a = 1 /* x */", "comment"),
    ("a = E'\\''", "backslash"),
    ("a = $$x$$", "dollar"),
    ("a = :value", "parameter"),
    ("a = 'open", "unterminated"),
    ("pg_terminate_backend(pid) is not null", "signals or terminates"),
    ("nextval('s') > 0", "sequence"),
    ("set_config('default_transaction_read_only', 'off', false) = 'off'", "session setting"),
    ("a =", "does not parse"),
    ("", "boolean expression"),
])
def test_where_rejects_what_could_escape_or_act(expression, reason):
    with pytest.raises(ValueError, match=reason):
        validate_where(expression)


# ---------------------------------------------------------------- generated SQL
def test_sum_matches_sql_text():
    query = build_query(invariant_check("sum_matches", **RULES["sum_matches"]), "postgresql")
    assert query.sql == (
        'select p."id" as "id", p."balance" as "balance", coalesce(c.children_sum, 0) as '
        'children_sum, coalesce(p."balance", 0) - coalesce(c.children_sum, 0) as difference '
        'from "accounts" as p left join (select "account_id" as parent_key, sum("amount") as '
        'children_sum from "ledger_entries" group by "account_id") as c on c.parent_key = p."id" '
        'where (p."balance" is null or abs(coalesce(p."balance", 0) - '
        'coalesce(c.children_sum, 0)) > 0) order by p."id"')
    assert [name for name, _ in query.outputs] == ["id", "balance", "children_sum", "difference"]


def test_snapshot_months_per_dialect():
    check = invariant_check("snapshot_matches", **RULES["snapshot_matches"])
    postgres_sql = build_query(check, "postgresql").sql
    sqlite_sql = build_query(check, "sqlite").sql
    assert "date_trunc('month', e.\"created_at\") as month_start" in postgres_sql
    assert "m.month_start < (date_trunc('month', s.\"month\") + interval '1 month')" \
        in postgres_sql
    assert "date(e.\"created_at\", 'start of month') as month_start" in sqlite_sql
    assert "m.month_start < date(s.\"month\", 'start of month', '+1 month')" in sqlite_sql
    for sql in (postgres_sql, sqlite_sql):
        assert "> 0.01" in sql and "select distinct \"account_id\", \"month\", \"balance\"" in sql
        assert "group by e.\"account_id\"" in sql   # entries summed per month in the database


def test_where_and_qualified_names_land_quoted_and_parenthesized():
    duplicates = build_query(invariant_check("no_duplicates", **RULES["no_duplicates"]),
                             "sqlite").sql
    assert duplicates == (
        'select t."provider" as "provider", t."provider_ref" as "provider_ref", count(*) as '
        'copies from "payments" as t where (status <> \'void\') and t."provider" is not null '
        'and t."provider_ref" is not null group by t."provider", t."provider_ref" having '
        'count(*) > 1 order by count(*) desc, t."provider", t."provider_ref"')
    orphans = build_query(invariant_check("no_orphans", **RULES["no_orphans"]), "sqlite").sql
    assert 'from "public"."accounts" as p where p."id" = c."account_id"' in orphans


def test_append_only_modes():
    gaps = build_query(invariant_check("append_only", table="ledger", contiguous_id="id"),
                       "sqlite").sql
    assert 'lead(t."id") over (order by t."id") as next_id' in gaps
    assert "where next_id > previous_id + 1" in gaps
    grants = build_query(invariant_check("append_only", table="public.ledger",
                                         roles=["app", "worker"]), "postgresql").sql
    assert "(values ('app'), ('worker')) as w(role_name)" in grants
    assert "has_table_privilege(r.oid, '\"public\".\"ledger\"', p.privilege)" in grants
    assert "('UPDATE'), ('DELETE'), ('TRUNCATE')" in grants


def test_count_is_scalar_without_groups():
    query = build_query(invariant_check("count", table="dead_letters", where="age > 1",
                                        expect="== 0"), "sqlite")
    assert query.sql == 'select count(*) as row_count from "dead_letters" as t where (age > 1)'


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_generated_query_is_one_read_for_the_sql_guard(rule, dialect):
    query = build_query(invariant_check(rule, **RULES[rule]), dialect)
    check_read_only(query.sql)
    for name in re.findall(r'"([^"]+)"', query.sql):
        assert validate_identifier(name) == name


def test_every_postgres_query_is_one_read_for_the_sql_guard():
    for sql in (postgres.reachable_sql(), postgres.saturation_sql(), postgres.visibility_sql(),
                postgres.idle_in_transaction_sql(60), postgres.advisory_locks_sql(30, 42, True),
                postgres.advisory_locks_sql(30, [1, 2], False), postgres.lock_waits_sql(10),
                postgres.writable_sql("app"), postgres.writable_sql(None),
                postgres.server_setting_sql(),
                *(postgres.migration_sql(tool, "public.versions", "v", None)
                  for tool in ("alembic", "flyway", "prisma", "custom")),
                postgres.migration_sql("custom", "versions", "v", "applied_at")):
        check_read_only(sql)


# ---------------------------------------------------------------- masking
def test_masking_follows_the_columns_a_value_is_computed_from():
    query = build_query(invariant_check("sum_matches", **RULES["sum_matches"]), "sqlite")
    assert masked_columns(query, ["amount"]) == {"children_sum", "difference"}
    assert masked_columns(query, ["balance"]) == {"balance", "difference"}
    assert masked_columns(query, ["id"]) == {"id"}
    rows = [{"id": 1, "balance": 10, "children_sum": None, "difference": 3}]
    assert mask_rows(rows, {"balance", "children_sum", "difference"}) == [
        {"id": 1, "balance": "[MASKED]", "children_sum": None, "difference": "[MASKED]"}]
    totals = build_query(invariant_check("consistent_totals", **RULES["consistent_totals"]),
                         "sqlite")
    assert masked_columns(totals, ["amount"]) == {"left_total", "right_total", "difference"}


# ---------------------------------------------------------------- rule configuration
@pytest.mark.parametrize("rule, fields, problem", [
    ("sum_matches", {"parent": ACCOUNTS}, "rule sum_matches needs 'children'"),
    ("no_orphans", {**RULES["no_orphans"], "tolerance": 1}, "'tolerance' does not apply"),
    ("sum_matches", {"parent": {"table": "a", "key": "id"}, "children": LEDGER},
     "parent.value is required"),
    ("no_orphans", {"child": {"table": "a", "key": "id", "value": "v"},
                    "parent": {"table": "b", "key": "id"}}, "child.value does not apply"),
    ("append_only", {"table": "t", "updated_column": "u", "contiguous_id": "id"},
     "exactly one of"),
    ("append_only", {"table": "t", "contiguous_id": "id", "created_column": "c"},
     "'created_column' goes with 'updated_column'"),
    ("no_duplicates", {"table": "t", "columns": ["copies"]}, "would share a name"),
    ("no_duplicates", {"table": "t", "columns": ["a", "a"]}, "would share a name"),
    ("count", {"table": "t"}, "needs 'expect'"),
])
def test_rule_configuration_problems(rule, fields, problem):
    with pytest.raises(ValidationError, match=re.escape(problem)):
        invariant_check(rule, **fields)


def test_roles_need_postgresql_targets():
    check = invariant_check("append_only", table="t", roles=["app"])
    sqlite = Targets.model_validate({"databases": {"main": {"url": "sqlite:///x"}}})
    postgresql = Targets.model_validate({"databases": {"main": {"url": "postgresql://h/d"}}})
    assert "is not PostgreSQL" in check.target_problems(sqlite)[0][1]
    assert check.target_problems(postgresql) == []
    assert postgres_check("reachable").target_problems(sqlite)[0][0] == ("kind",)
    assert postgres_check("reachable").target_problems(postgresql) == []


def test_bad_identifiers_name_file_and_line(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(textwrap.dedent("""\
        targets:
          databases:
            main: {url: "sqlite:///x.sqlite"}
        checks:
          - id: D1
            title: balances
            kind: invariant
            rule: sum_matches
            parent: {table: "accounts a", key: id, value: balance}
            children: {table: ledger_entries, key: account_id, value: "amount)"}
          - id: D5
            title: duplicates
            kind: invariant
            rule: no_duplicates
            table: payments
            columns: [provider_ref]
            where: "1=1; drop table payments"
        """))
    with pytest.raises(ConfigError) as caught:
        load_environment(path)
    problems = caught.value.problems
    assert any(re.match(r".*env\.yaml:9: checks\[0\] \(D1\)\.parent\.table: .*'accounts a' is "
                        r"not a plain SQL identifier", p) for p in problems), problems
    assert any(re.match(r".*env\.yaml:10: checks\[0\] \(D1\)\.children\.value: .*'amount\)'",
                        p) for p in problems), problems
    assert any(re.match(r".*env\.yaml:17: checks\[1\] \(D5\)\.where: .*statement separator", p)
               for p in problems), problems


# ---------------------------------------------------------------- postgres kind helpers
def test_advisory_keys_split_like_pg_locks_and_back():
    assert postgres._key_filter(42) == " and l.classid = 0 and l.objid = 42 and l.objsubid = 1"
    assert postgres._key_filter(-5) == \
        " and l.classid = 4294967295 and l.objid = 4294967291 and l.objsubid = 1"
    assert postgres._key_filter([-5, 9]) == \
        " and l.classid = 4294967291 and l.objid = 9 and l.objsubid = 2"
    assert postgres.with_key({"classid": 4294967295, "objid": 4294967291, "objsubid": 1}
                             )["lock_id"] == -5
    assert postgres.with_key({"classid": 4294967291, "objid": 9, "objsubid": 2}
                             )["lock_id"] == [-5, 9]


def test_read_only_levels_resolve_highest_first():
    resolve = postgres.resolve_mode
    assert resolve(True, {"database": "off"}) == ("replica", "pg_is_in_recovery()")
    assert resolve(False, {"role_in_database": "off", "database": "on"}) == \
        ("primary", "role_in_database")
    assert resolve(False, {"role": None, "database": "on", "server": "off"}) == \
        ("read_only", "database")
    assert resolve(False, {"database": None, "all_roles": None, "server": "true"}) == \
        ("read_only", "server")
    assert resolve(False, {}) == ("primary", "default")
    for text, value in (("on", True), ("TRUE", True), ("ye", True), ("1", True), ("off", False),
                        ("of", False), ("f", False), ("no", False), ("0", False)):
        assert postgres.parse_bool(text) is value
    with pytest.raises(NoData):
        postgres.parse_bool("o")


@pytest.mark.parametrize("check, fields, problem", [
    ("reachable", {"max_age": 1}, "'max_age' does not apply to check reachable"),
    ("writable", {"expect": "secondary"}, "'secondary' is not a mode"),
    ("advisory_locks", {"key": [1, 2, 3]}, "give one bigint"),
    ("advisory_locks", {"key": 2**63}, "out of range"),
    ("migration_version", {}, "needs 'expect'"),
    ("migration_version", {"expect": "=< 3"}, "is not a condition"),
    ("migration_version", {"tool": "custom", "expect": "== 1"}, "needs 'table' and 'column'"),
    ("migration_version", {"order_by": "x", "expect": "== 1"}, "goes with tool custom"),
    ("migration_version", {"table": "a b", "expect": "== 1"}, "not a plain SQL identifier"),
    ("connection_saturation", {"max": 0}, "greater than 0"),
])
def test_postgres_configuration_problems(check, fields, problem):
    with pytest.raises(ValidationError, match=re.escape(problem)):
        postgres_check(check, **fields)


def test_postgres_defaults_and_conditions():
    assert postgres_check("writable").condition.text == "== primary"
    assert postgres_check("read_only").condition.text == "in [replica, read_only]"
    assert postgres_check("migration_version", tool="flyway", expect="== 3").version_source == \
        ("flyway_schema_history", "version")
    assert postgres_check("migration_version", tool="prisma", expect="exists",
                          table="app._prisma_migrations").version_source == \
        ("app._prisma_migrations", "migration_name")
    assert invariant.describe(invariant_check("sum_matches", **RULES["sum_matches"])) == \
        "accounts.balance != sum(ledger_entries.amount)"
