"""Configured SQL is one read: writes, session changes and side-effect calls are refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsgate.config.sqlguard import (
    SIDE_EFFECT_FUNCTIONS,
    InvalidSql,
    UnsafeSql,
    check_read_only,
    side_effect_reason,
    statement_kind,
)

# (SQL, a fragment the message must contain)
REJECTED = [
    # data changes
    ("insert into jobs (status) values ('failed')", "INSERT"),
    ("update accounts set balance = 0", "UPDATE"),
    ("delete from dead_letters", "DELETE"),
    ("merge into t using s on t.id = s.id when matched then delete", "MERGE"),
    ("truncate ledger_entries", "TRUNCATE"),
    ("insert into t select * from s returning id", "INSERT"),
    ("with x as (select 1) insert into t select * from x", "INSERT"),
    # schema and permissions
    ("create table t (a int)", "CREATE TABLE"),
    ("create table t as select 1", "CREATE TABLE AS"),
    ("create materialized view m as select 1", "CREATE MATERIALIZED VIEW"),
    ("refresh materialized view m", "REFRESH MATERIALIZED VIEW"),
    ("drop table accounts", "DROP"),
    ("alter table t add column b int", "ALTER TABLE"),
    ("create index on t (a)", "CREATE INDEX"),
    ("create sequence s", "CREATE SEQUENCE"),
    ("create function f() returns int language sql as 'select 1'", "CREATE FUNCTION"),
    ("grant select on t to public", "GRANT"),
    ("revoke select on t from public", "REVOKE"),
    ("comment on table t is 'x'", "COMMENT"),
    ("alter system set work_mem = '1GB'", "ALTER SYSTEM"),
    # bulk data, files, programs
    ("copy t to program 'curl http://x'", "COPY"),
    ("copy t from '/etc/passwd'", "COPY"),
    ("copy (select 1) to stdout", "COPY"),
    # session settings and transactions
    ("set transaction read write", "SET TRANSACTION"),
    ("set default_transaction_read_only = off", "read-only mode off"),
    ("set session characteristics as transaction read write", "SET"),
    ("set role postgres", "SET"),
    ("set local statement_timeout = 0", "SET"),
    ("reset all", "RESET"),
    ("begin", "BEGIN"),
    ("start transaction read write", "START TRANSACTION"),
    ("commit", "COMMIT"),
    ("rollback", "ROLLBACK"),
    ("savepoint a", "SAVEPOINT"),
    ("prepare transaction 'x'", "PREPARE TRANSACTION"),
    ("discard all", "DISCARD"),
    # locks, maintenance, code, messaging, prepared statements, cursors
    ("lock table accounts in access exclusive mode", "LOCK"),
    ("vacuum full accounts", "VACUUM"),
    ("analyze accounts", "ANALYZE"),
    ("checkpoint", "CHECKPOINT"),
    ("call archive_jobs()", "CALL"),
    ("do $$ begin delete from jobs; end $$", "DO"),
    ("listen jobs", "LISTEN"),
    ("notify jobs, 'x'", "NOTIFY"),
    ("prepare p as select 1", "PREPARE"),
    ("execute p", "EXECUTE"),
    ("declare c cursor for select 1", "DECLARE"),
    ("load 'auto_explain'", "LOAD"),
    # reads that are not reads
    ("select * into backup_accounts from accounts", "INTO"),
    ("select * into temporary t from accounts", "INTO"),
    ("select * from accounts for update", "FOR UPDATE"),
    ("select * from accounts for no key update nowait", "FOR NO KEY UPDATE"),
    ("select * from accounts for share skip locked", "FOR SHARE"),
    ("select * from accounts for key share", "FOR KEY SHARE"),
    ("select * from (select id from accounts for update) x", "FOR UPDATE"),
    ("with x as (select id from jobs for update) select * from x", "FOR UPDATE"),
    ("select 1 union select id from jobs for update", "FOR UPDATE"),
    # data-modifying WITH
    ("with gone as (delete from jobs returning *) select count(*) from gone", '"gone"'),
    ("with u as (update accounts set balance = 0 returning id) select * from u", "UPDATE"),
    ("with i as (insert into t values (1) returning *) select * from i", "INSERT"),
    ("with a as (select 1), b as (delete from t returning 1) select * from a", '"b"'),
    ("select * from (with d as (delete from t returning 1) select * from d) x", "DELETE"),
    ("with m as (merge into t using s on t.id = s.id when matched then delete returning *) "
     "select * from m", "MERGE"),
    # EXPLAIN ANALYZE and what EXPLAIN explains
    ("explain analyze select * from accounts", "EXPLAIN ANALYZE"),
    ("explain analyse select 1", "EXPLAIN ANALYZE"),
    ("explain (analyze) select 1", "EXPLAIN ANALYZE"),
    ("explain (analyze true, buffers) select 1", "EXPLAIN ANALYZE"),
    ("explain (analyze on) select 1", "EXPLAIN ANALYZE"),
    ("explain (analyze 1) select 1", "EXPLAIN ANALYZE"),
    ("explain (costs off, analyze) select 1", "EXPLAIN ANALYZE"),
    ("explain (analyze false, analyze true) select 1", "EXPLAIN ANALYZE"),
    ("explain analyze delete from jobs", "EXPLAIN ANALYZE"),
    ("explain delete from jobs", "EXPLAIN of DELETE"),
    ("explain create table t as select 1", "EXPLAIN of CREATE TABLE AS"),
    ("explain execute p", "EXPLAIN of EXECUTE"),
    ("explain select nextval('s')", "nextval()"),
    # side-effect functions anywhere in the tree
    ("select nextval('jobs_id_seq')", "nextval()"),
    ("select pg_catalog.nextval('jobs_id_seq')", "pg_catalog.nextval()"),
    ("SELECT NEXTVAL('jobs_id_seq')", "nextval()"),
    ('select "nextval"(\'s\')', "nextval()"),
    ("select setval('s', 1)", "setval()"),
    ("select * from accounts where id = (select pg_advisory_lock(1))", "pg_advisory_lock()"),
    ("select pg_try_advisory_xact_lock(1, 2)", "pg_try_advisory_xact_lock()"),
    ("select pg_advisory_unlock_all()", "pg_advisory_unlock_all()"),
    ("select pid from pg_stat_activity where pg_terminate_backend(pid)",
     "pg_terminate_backend()"),
    ("select pg_cancel_backend(pid) from pg_stat_activity", "pg_cancel_backend()"),
    ("select pg_reload_conf()", "pg_reload_conf()"),
    ("select pg_rotate_logfile()", "pg_rotate_logfile()"),
    ("select set_config('default_transaction_read_only', 'off', false)", "set_config()"),
    ("select pg_switch_wal()", "pg_switch_wal()"),
    ("select pg_create_restore_point('x')", "pg_create_restore_point()"),
    ("select pg_promote()", "pg_promote()"),
    ("select pg_sleep(10)", "pg_sleep()"),
    ("select * from pg_sleep_for('1 minute')", "pg_sleep_for()"),
    ("select lo_import('/etc/passwd')", "lo_import()"),
    ("select lo_export(1, '/tmp/x')", "lo_export()"),
    ("select lo_from_bytea(0, 'x')", "lo_from_bytea()"),
    ("select * from dblink('host=x', 'delete from t') as t(a int)", "dblink()"),
    ("select dblink_exec('host=x', 'drop table t')", "dblink_exec()"),
    ("select pg_read_file('/etc/passwd')", "pg_read_file()"),
    ("select * from pg_ls_dir('.')", "pg_ls_dir()"),
    ("select pg_notify('jobs', 'x')", "pg_notify()"),
    ("select txid_current()", "txid_current()"),
    ("select pg_current_xact_id()", "pg_current_xact_id()"),
    ("select pg_logical_emit_message(true, 'x', 'y')", "pg_logical_emit_message()"),
    ("select pg_create_logical_replication_slot('s', 'pgoutput')",
     "pg_create_logical_replication_slot()"),
    ("select pg_drop_replication_slot('s')", "pg_drop_replication_slot()"),
    ("select pg_replication_origin_create('o')", "pg_replication_origin_create()"),
    ("select pg_file_write('x', 'y', false)", "pg_file_write()"),
    ("select pg_stat_reset()", "pg_stat_reset()"),
    ("select query_to_xml('select nextval(''s'')', true, false, '')", "query_to_xml()"),
    ("select count(*) from jobs group by status having max(nextval('s')) > 0", "nextval()"),
    ("select * from jobs order by pg_sleep(1)", "pg_sleep()"),
    ("select * from jobs limit (select nextval('s'))", "nextval()"),
    ("select coalesce(sum(amount), nextval('s')) from ledger_entries", "nextval()"),
    ("select case when true then pg_sleep(1) end", "pg_sleep()"),
    ("select * from jobs j, lateral (select pg_advisory_lock(j.id)) l", "pg_advisory_lock()"),
    ("select * from rows from (generate_series(1, 2), pg_sleep(1)) r", "pg_sleep()"),
    ("with s as (select nextval('s')) select * from s", "nextval()"),
    ("values (1), (nextval('s'))", "nextval()"),
    ("select exists (select 1 from jobs where id = nextval('s'))", "nextval()"),
    ("select nextval('s')::text", "nextval()"),
    ("select row_number() over (order by nextval('s')) from jobs", "nextval()"),
    ("select count(*) filter (where pg_sleep(1) is null) from jobs", "pg_sleep()"),
    ('select U&"\\006Eextval"(\'s\')', "nextval()"),
    ("select xmlelement(name x, pg_sleep(1))", "pg_sleep()"),
    ("select * from jobs tablesample system (nextval('s'))", "nextval()"),
    ("select percentile_cont(0.5) within group (order by pg_sleep(1)) from jobs", "pg_sleep()"),
    ("select * from jobs where id = any (array(select nextval('s')))", "nextval()"),
    ("select * from accounts a, jobs j for update of a", "FOR UPDATE"),
    # several statements
    ("select 1; select 2", "2 statements"),
    ("select 1; delete from jobs", "2 statements"),
    ("select count(*) from jobs;\ndrop table jobs;", "line 2, column 1"),
]


@pytest.mark.parametrize(("sql", "fragment"), REJECTED)
def test_writes_and_side_effects_are_rejected(sql, fragment):
    with pytest.raises(UnsafeSql) as caught:
        check_read_only(sql)
    assert not isinstance(caught.value, InvalidSql), caught.value
    assert fragment in str(caught.value)


def test_the_rejected_table_is_large():
    assert len(REJECTED) >= 50


ACCEPTED = [
    "select 1",
    "select 1;",
    "select count(*) from pg_stat_activity",
    "select count(*)::float / current_setting('max_connections')::int from pg_stat_activity",
    "select count(*) from dead_letters",
    "select count(*) from jobs where status = 'failed'",
    """select a.id as account_id, a.balance, coalesce(sum(e.amount), 0) as ledger_sum
       from accounts a left join ledger_entries e on e.account_id = a.id
       group by a.id, a.balance
       having a.balance <> coalesce(sum(e.amount), 0)""",
    """select e.id as entry_id, e.account_id
       from ledger_entries e left join accounts a on a.id = e.account_id
       where a.id is null""",
    "select pg_is_in_recovery()",
    "show transaction_read_only",
    "show all",
    "select status, count(*) from jobs group by status having count(*) > 10 order by 2 desc",
    "select id, rank() over (partition by status order by created_at desc) from jobs",
    "select count(*) from jobs where created_at > now() - interval '1 hour'",
    "select coalesce(max(heartbeat_at), 'epoch') from workers",
    "select a.id, l.amount from accounts a cross join lateral "
    "(select amount from ledger_entries e where e.account_id = a.id limit 1) l",
    "explain select * from jobs where status = 'failed'",
    "explain (format json, costs off) select 1",
    "explain (analyze false) select 1",
    "explain (analyze off, verbose) select 1",
    "explain verbose select count(*) from jobs",
    """select l.locktype, l.mode, a.pid, a.query, now() - a.query_start as waiting
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
       where not l.granted""",
    "select current_setting('server_version_num')::int >= 150000",
    "select current_setting('default_transaction_read_only')",
    "select 1 union all select 2 except select 3",
    "values (1, 'a'), (2, 'b')",
    "table jobs",
    "with recursive n(i) as (select 1 union all select i + 1 from n where i < 5) "
    "select sum(i) from n",
    "with failed as (select * from jobs where status = 'failed') select count(*) from failed",
    "select max(extract(epoch from now() - last_success)) from workers",
    "select count(*) filter (where status = 'failed') from jobs",
    "select exists (select 1 from accounts where balance < 0)",
    "select pg_database_size(current_database())",
    "select pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) from pg_stat_replication",
    "select count(*) from pg_ls_waldir()",
    "select currval('jobs_id_seq')",
    "select txid_current_if_assigned()",
    "select pg_blocking_pids(pid) from pg_stat_activity",
    "select * from generate_series(1, 3) g",
    "select nextval from sequences_report",
    "select 'nextval(1)' as text_not_a_call",
    "select $$; delete from jobs$$ as dollar_quoted_text",
    "-- how many failed\nselect count(*) /* jobs */ from jobs",
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_reads_are_accepted(sql):
    check_read_only(sql)


@pytest.mark.parametrize(("sql", "line", "column", "near"), [
    ("select 1 from\nwhere x", 2, 1, '"where"'),
    ("selec 1", 1, 1, '"selec"'),
    ("select count(* from jobs", 1, 16, '"from"'),
    ("select 'é' from\n  jobs wher x", 2, 13, '"x"'),
])
def test_syntax_errors_give_postgres_message_and_position(sql, line, column, near):
    with pytest.raises(InvalidSql) as caught:
        check_read_only(sql)
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert f"syntax error at or near {near}" in str(error)
    assert f"line {line}, column {column}" in str(error)


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", ";"])
def test_empty_sql_is_invalid(sql):
    with pytest.raises(InvalidSql, match="no statement"):
        check_read_only(sql)


def test_sqlite_only_syntax_is_a_syntax_error():
    with pytest.raises(InvalidSql, match="PostgreSQL's grammar"):
        check_read_only("select * from jobs where status = 'failed' limit 1, 5")


def test_errors_are_value_errors_with_positions_for_calls():
    with pytest.raises(ValueError) as caught:
        check_read_only("select 1,\n       pg_sleep(5)")
    assert (caught.value.line, caught.value.column) == (2, 8)


@pytest.mark.parametrize(("sql", "kind"), [
    ("select 1", "SELECT"), ("values (1)", "VALUES"), ("select 1 into t", "SELECT INTO"),
    ("show all", "SHOW"), ("explain select 1", "EXPLAIN"), ("insert into t values (1)", "INSERT"),
    ("set transaction read write", "SET TRANSACTION"), ("reset all", "RESET"),
    ("begin", "BEGIN"), ("create table t (a int)", "CREATE TABLE"), ("vacuum", "VACUUM"),
    ("alter table t add b int", "ALTER TABLE"), ("checkpoint", "CHECKPOINT"),
])
def test_statement_kind(sql, kind):
    assert statement_kind(sql) == kind


@pytest.mark.parametrize("name", sorted(SIDE_EFFECT_FUNCTIONS))
def test_every_listed_function_is_rejected_with_or_without_schema(name):
    for call in (f"select {name}(1)", f"select PG_CATALOG.{name.upper()}(1)"):
        with pytest.raises(UnsafeSql, match=r"is not allowed because it"):
            check_read_only(call)


@pytest.mark.parametrize("name", [
    "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_advisory_future_variant",
    "lo_put", "lo_unlink", "lo_create", "dblink_connect", "pg_replication_origin_session_setup",
    "pg_create_physical_replication_slot", "pg_sleep_until", "pg_stat_reset_shared",
])
def test_function_families_are_covered(name):
    assert side_effect_reason(name) is not None


@pytest.mark.parametrize("name", [
    "count", "coalesce", "now", "current_setting", "pg_is_in_recovery", "currval",
    "pg_ls_waldir", "lower", "longest", "pg_advisory", "sleep",
])
def test_harmless_functions_have_no_side_effect(name):
    assert side_effect_reason(name) is None


# ---------------------------------------------------------------- generated combinations
READ_TEMPLATES = [
    "select {e}",
    "select id, {e} as x from jobs",
    "select count(*) from jobs where status = 'failed' and {e} is not null",
    "select * from jobs where id in (select {e} from accounts)",
    "select status, count(*) from jobs group by status having count(*) > {e}",
    "select * from jobs order by {e}",
    "select * from jobs limit {e}",
    "with failed as (select {e} as v from jobs) select count(*) from failed",
    "select a.id from accounts a cross join lateral (select {e} as v) l",
    "select * from accounts a join ledger_entries e on e.account_id = a.id and {e} > 0",
    "select exists (select 1 from jobs where {e} = 1)",
    "select sum(amount) over (partition by {e}) from ledger_entries",
    "select 1 union all select {e}",
    "values (1), ({e})",
    "explain select {e} from jobs",
    "select * from (select {e} as v) s",
    "select * from rows from (generate_series(1, {e})) r",
]

EXPRESSION_WRAPPERS = [
    "({})", "coalesce({}, 0)", "({} + 1)", "(1 - {})", "abs({})", "({})::text",
    "case when ({}) is null then 0 else 1 end", "case when id > 0 then {} end", "array[1, {}]",
    "greatest(1, {})", "(select {})", "(select max(v) from (select {} as v) s)", "(not ({}))",
    "(({}) is distinct from 3)", "row({}, 2)",
]

SIDE_EFFECT_CALLS = st.builds(
    lambda name, schema, upper, args: f"{schema}{name.upper() if upper else name}({args})",
    st.sampled_from(sorted(SIDE_EFFECT_FUNCTIONS)),
    st.sampled_from(["", "pg_catalog.", "public."]),
    st.booleans(),
    st.sampled_from(["", "1", "'x'", "1, 2", "id"]),
)
HARMLESS_CALLS = st.sampled_from(["abs(1)", "current_setting('work_mem')", "now()", "length('x')"])


def _nested(call):
    return st.lists(st.sampled_from(EXPRESSION_WRAPPERS), max_size=4).map(
        lambda wrappers: _wrap(call, wrappers)
    )


def _wrap(expression, wrappers):
    for wrapper in wrappers:
        expression = wrapper.format(expression)
    return expression


@settings(max_examples=300, deadline=None)
@given(template=st.sampled_from(READ_TEMPLATES), expression=SIDE_EFFECT_CALLS.flatmap(_nested))
def test_a_side_effect_call_anywhere_in_a_read_is_rejected(template, expression):
    sql = template.format(e=expression)
    with pytest.raises(UnsafeSql) as caught:
        check_read_only(sql)
    assert not isinstance(caught.value, InvalidSql), (sql, caught.value)
    assert "() is not allowed" in str(caught.value)


@settings(max_examples=100, deadline=None)
@given(template=st.sampled_from(READ_TEMPLATES), expression=HARMLESS_CALLS.flatmap(_nested))
def test_the_same_reads_with_harmless_calls_are_accepted(template, expression):
    check_read_only(template.format(e=expression))


@settings(max_examples=200, deadline=None)
@given(
    first=st.sampled_from(READ_TEMPLATES).map(lambda t: t.format(e="1")),
    separator=st.sampled_from([";", "; ", ";\n", ";\n-- next\n", " ; /* x */ "]),
    second=st.sampled_from([t.format(e="1") for t in READ_TEMPLATES] + [
        "delete from jobs", "set transaction read write", "select pg_sleep(60)", "commit",
    ]),
    trailing=st.sampled_from(["", ";"]),
)
def test_a_second_statement_is_always_rejected(first, separator, second, trailing):
    with pytest.raises(UnsafeSql, match="2 statements"):
        check_read_only(first + separator + second + trailing)
