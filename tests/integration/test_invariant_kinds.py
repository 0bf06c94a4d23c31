"""``kind: invariant`` end to end through the plugin, on real tables in PostgreSQL and SQLite.

The same tables are created twice in each database: ``ok_*`` where every invariant holds and
``bad_*`` where each one is broken in a known way (a balance that drifted, an entry on the first
instant of a month, orphans, duplicate references, an updated row, a deleted id, a payout
missing from the export, a growing dead-letter reason). One run per database judges every rule
on both; the evidence shows the counts, the capped samples and the masked columns.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from tests.integration.test_postgres_kinds import no_sessions_left, run_env, run_gate, write_env

SCHEMA = [
    "create table {p}accounts (id integer primary key, balance numeric(12,2))",
    "create table {p}ledger_entries (id integer primary key, account_id integer, "
    "amount numeric(12,2), created_at timestamp not null, updated_at timestamp, "
    "provider_ref varchar(40), idempotency_key varchar(64))",
    "create table {p}monthly_snapshots (account_id integer, month date, balance numeric(12,2))",
    "create table {p}payouts (id integer primary key, amount numeric(12,2), status varchar(20))",
    "create table {p}exports (id integer primary key, amount numeric(12,2))",
    "create table {p}dead_letters (id integer primary key, reason varchar(40))",
]
ROWS = [
    "insert into {p}accounts values (1, 100.00), (2, 50.00), (3, 0.00)",
    "insert into {p}ledger_entries values "
    "(1, 1, 60.00, '2024-01-10 10:00:00', null, 'pix-1', 'idem-1'), "
    "(2, 1, 40.00, '2024-02-05 09:00:00', '2024-02-05 09:00:00', 'pix-2', 'idem-2'), "
    "(3, 2, 50.00, '2024-01-31 23:59:59', null, null, 'idem-3'), "
    "(4, 2, 0.00, '2024-02-01 00:00:00', null, null, 'idem-4')",
    "insert into {p}monthly_snapshots values (1, '2024-01-01', 60.00), (1, '2024-02-01', 100.00), "
    "(2, '2024-01-01', 50.00), (2, '2024-02-01', 50.00)",
    "insert into {p}payouts values (1, 100.00, 'paid'), (2, 50.00, 'paid'), (3, 9.00, 'pending')",
    "insert into {p}exports values (1, 100.00), (2, 50.00)",
    "insert into {p}dead_letters values (1, 'timeout'), (2, 'timeout'), (3, 'invalid')",
]
BREAKAGE = [
    "update {p}accounts set balance = 70.00 where id = 2",
    "insert into {p}accounts values " + ", ".join(f"({n}, 1.00)" for n in range(10, 22)),
    # id 5 never exists (a deleted row); entry 6 is on the first instant of February and was
    # updated later; 7 and 8 belong to accounts that do not exist; all three share a reference.
    "insert into {p}ledger_entries values "
    "(6, 1, 5.00, '2024-02-01 00:00:00', '2024-03-01 12:00:00', 'pix-dup', 'idem-dup'), "
    "(7, 99, 1.00, '2024-01-15 00:00:00', null, 'pix-dup', 'idem-dup'), "
    "(8, 98, 2.00, '2024-01-16 00:00:00', null, 'pix-dup', 'idem-x')",
    "update {p}exports set amount = 49.00 where id = 2",
    "insert into {p}dead_letters values (4, 'timeout'), (5, 'timeout'), (6, 'timeout')",
]


def statements(prefix: str, broken: bool) -> list[str]:
    return [s.format(p=prefix) for s in SCHEMA + ROWS + (BREAKAGE if broken else [])]


def inv(ident: str, rule: str, **options: Any) -> dict[str, Any]:
    """A ``kind: invariant`` check."""
    return {"id": ident, "title": f"{rule} {ident}", "kind": "invariant", "rule": rule,
            **options}


def rule_checks(prefix: str, schema: str) -> list[dict[str, Any]]:
    """Every rule over the tables ``{prefix}*`` (ids end in the prefix)."""
    p, tag = prefix, prefix.rstrip("_")
    return [
        inv(f"D1-{tag}", "sum_matches", sample=3, mask=["balance", "amount"],
            parent={"table": f"{schema}.{p}accounts", "key": "id", "value": "balance"},
            children={"table": f"{p}ledger_entries", "key": "account_id", "value": "amount"}),
        inv(f"D2-{tag}", "snapshot_matches", tolerance=0.01,
            snapshot={"table": f"{p}monthly_snapshots", "key": "account_id", "period": "month",
                      "value": "balance"},
            entries={"table": f"{p}ledger_entries", "key": "account_id", "value": "amount",
                     "time": "created_at"}),
        inv(f"D4-{tag}", "no_orphans", child={"table": f"{p}ledger_entries", "key": "account_id"},
            parent={"table": f"{p}accounts", "key": "id"}),
        inv(f"D5-{tag}", "no_duplicates", table=f"{p}ledger_entries", columns=["provider_ref"],
            mask=["provider_ref"]),
        inv(f"D5-where-{tag}", "no_duplicates", table=f"{p}ledger_entries",
            columns=["provider_ref", "account_id"], where="account_id < 90"),
        inv(f"D3-updated-{tag}", "append_only", table=f"{p}ledger_entries",
            updated_column="updated_at", key="id"),
        inv(f"D3-gaps-{tag}", "append_only", table=f"{p}ledger_entries", contiguous_id="id"),
        inv(f"D8-{tag}", "consistent_totals", tolerance=0.5,
            left={"table": f"{p}payouts", "value": "amount", "where": "status = 'paid'"},
            right={"table": f"{p}exports", "value": "amount"}),
        inv(f"Q6-{tag}", "count", table=f"{p}dead_letters", group_by=["reason"], expect="<= 3"),
        inv(f"Q5-{tag}", "count", table=f"{p}dead_letters", where="reason = 'timeout'",
            expect="<= 3"),
    ]


def assert_rules(run: Any) -> None:
    """Every rule passes on ok_* and fails on bad_* for the reason it was broken."""
    for record in run.document["checks"]:
        ident = record["id"]
        if ident.endswith("-ok") or ident == "D5-where-bad":
            assert record["outcome"] == "passed", record
            assert record["observed"] == 0 or ident.startswith("Q"), record
        elif ident.endswith("-bad"):
            assert record["outcome"] == "failed", record

    balances = run.seen("D1-bad")
    assert balances["total"] == 14 and len(balances["rows"]) == 3           # sample capped
    assert sorted(balances["masked"]) == ["balance", "children_sum", "difference"]
    assert balances["rows"][0] == {"id": 1, "balance": "[MASKED]", "children_sum": "[MASKED]",
                                   "difference": "[MASKED]"}
    assert run.check("D1-bad")["message"].endswith("(14) == 0")

    (snapshot,) = run.seen("D2-bad")["rows"]   # January excludes the entry at Feb 1 00:00
    assert snapshot["account_id"] == 1 and str(snapshot["month"]).startswith("2024-02-01")
    assert float(snapshot["ledger_sum"]) == 105.0 and float(snapshot["difference"]) == -5.0

    assert run.seen("D4-bad")["rows"] == [{"account_id": 98, "child_rows": 1},
                                          {"account_id": 99, "child_rows": 1}]
    assert run.seen("D5-bad")["rows"] == [{"provider_ref": "[MASKED]", "copies": 3}]
    assert run.seen("D5-bad")["masked"] == ["provider_ref"]
    (updated,) = run.seen("D3-updated-bad")["rows"]
    assert updated["id"] == 6
    assert run.seen("D3-gaps-bad")["rows"] == [{"previous_id": 4, "next_id": 6, "missing": 1}]
    (totals,) = run.seen("D8-bad")["rows"]
    assert float(totals["left_total"]) == 150.0 and float(totals["right_total"]) == 149.0
    groups = run.check("Q6-bad")
    assert groups["observed"] == 5 and groups["message"] == \
        "largest group of bad_dead_letters by (reason) (5) <= 3"
    assert run.seen("Q6-bad")["rows"] == [{"reason": "timeout", "row_count": 5},
                                          {"reason": "invalid", "row_count": 1}]
    assert run.check("Q6-ok")["observed"] == 2
    assert run.check("Q5-bad")["observed"] == 5 and run.check("Q5-ok")["observed"] == 2


def test_every_rule_on_postgresql(pytester, pg_url, pg_admin):
    for prefix, broken in (("ok_", False), ("bad_", True)):
        for statement in statements(prefix, broken):
            pg_admin.execute(statement)
    checks = rule_checks("ok_", "public") + rule_checks("bad_", "public") + [
        inv("D3-roles-ok", "append_only", table="ok_ledger_entries", roles=["pg_read_all_data"]),
        inv("D3-roles-bad", "append_only", table="bad_ledger_entries",
            roles=["pg_write_all_data", "no_such_role_zz"]),
    ]
    run = run_gate(pytester, pg_url, checks)
    assert run.result.ret == 1
    assert_rules(run)
    grants = {(r["role_name"], r["privilege"]) for r in run.seen("D3-roles-bad")["rows"]}
    assert {("pg_write_all_data", "UPDATE"), ("pg_write_all_data", "DELETE"),
            ("no_such_role_zz", "role does not exist")} <= grants
    sql = run.check("D2-bad")["evidence"]["asked"]["sql"]
    assert "date_trunc('month'" in sql and run.check("D2-bad")["evidence"]["asked"]["dialect"] \
        == "postgresql"
    assert no_sessions_left(pg_admin) == []


def test_every_rule_on_sqlite(pytester, tmp_path):
    database = tmp_path / "app.sqlite"
    with sqlite3.connect(database) as connection:
        for prefix, broken in (("ok_", False), ("bad_", True)):
            for statement in statements(prefix, broken):
                connection.execute(statement)
    connection.close()
    checks = rule_checks("ok_", "main") + rule_checks("bad_", "main")
    run = run_gate(pytester, f"sqlite:///{database}", checks)
    assert run.result.ret == 1
    assert_rules(run)
    assert run.check("D2-bad")["evidence"]["asked"]["dialect"] == "sqlite"
    assert "'start of month', '+1 month'" in run.check("D2-bad")["evidence"]["asked"]["sql"]


def test_postgres_only_checks_on_sqlite_are_configuration_errors(pytester, tmp_path):
    checks = [inv("D3-roles", "append_only", table="ok_ledger_entries", roles=["app"]),
              {"id": "S1", "title": "postgres only", "kind": "postgres", "check": "reachable"}]
    path = write_env(pytester, {"main": f"sqlite:///{tmp_path / 'x.sqlite'}"}, checks)
    result, _ = run_env(pytester, path)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*checks[[]0[]]*roles*is not PostgreSQL*",
                                 "*checks[[]1[]]*needs a PostgreSQL database*"])


BAD_FIELDS = [
    ("table", "accounts; drop table accounts", r"is not a plain SQL identifier"),
    ("table", "a.b.c", r"at most one dot"),
    ("columns", ["provider ref"], r"'provider ref' is not a plain SQL identifier"),
    ("where", "1=1) or (1=1", r"closes a parenthesis it did not open"),
    ("where", "pg_terminate_backend(pid) is not null", r"signals or terminates other sessions"),
]


def test_bad_names_are_configuration_errors_with_file_and_line(pytester, tmp_path):
    checks = []
    for index, (field, value, _) in enumerate(BAD_FIELDS):
        checks.append(inv(f"C{index}", "no_duplicates", table="ledger", columns=["ref"]))
        checks[-1][field] = value
    path = write_env(pytester, {"main": f"sqlite:///{tmp_path / 'x.sqlite'}"}, checks)
    result, _ = run_env(pytester, path)
    assert result.ret == 4
    text = result.stdout.str() + result.stderr.str()
    lines = path.read_text().splitlines()
    for index, (field, value, message) in enumerate(BAD_FIELDS):
        found = re.search(rf"itest\.yaml:(\d+): checks\[{index}\] \(C{index}\)\.{field}\S*: "
                          rf".*{message}", text)
        assert found, (field, message, text)
        line = lines[int(found.group(1)) - 1]   # the line of the key, or of the list item
        assert f"{field}:" in line or str(value).strip("[]'") in line, line
