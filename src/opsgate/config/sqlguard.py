"""Configured SQL must be one read: checked with PostgreSQL's own parser before anything is sent.

opsgate runs configured SQL against production databases during incidents, so every query is
parsed with pglast (libpg_query, the parser of PostgreSQL itself) and walked before it is used.
Configured SQL is validated with PostgreSQL's grammar whatever the target database: the SQLite
demo's queries are plain portable SQL that this grammar parses, and SQLite-only syntax is out of
scope (it is reported as a syntax error).

Accepted: exactly one statement that reads, that is a SELECT (set operations, ``VALUES`` and
``TABLE`` included), a WITH whose every query is a SELECT, SHOW, or EXPLAIN without ANALYZE of
such a SELECT.

Rejected: several statements, every other statement (DML, DDL, COPY, SET and RESET, transaction
control, LOCK, VACUUM, CALL, DO, LISTEN and NOTIFY, PREPARE and EXECUTE, ...), data-modifying WITH
queries, ``SELECT ... INTO``, row locks (``FOR UPDATE`` / ``FOR SHARE`` and their variants),
EXPLAIN ANALYZE (it executes the statement), and calls anywhere in the tree to functions with side
effects (:data:`SIDE_EFFECT_FUNCTIONS` and the families in :func:`side_effect_reason`), matched
case-insensitively with or without a schema.

This guards against configuration mistakes; it is not a security boundary. A view, a trigger or a
user-defined function can still write, and a read-only transaction can be switched back to read
write by the session itself. Only a database role without write privileges is a boundary: connect
with one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError

READS = "SELECT, WITH ... SELECT, VALUES, SHOW or EXPLAIN without ANALYZE"

_SIDE_EFFECT_GROUPS: dict[str, tuple[str, ...]] = {
    "changes a sequence": ("nextval", "setval"),
    "takes or releases an advisory lock": (
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_advisory_unlock",
        "pg_advisory_unlock_shared", "pg_advisory_unlock_all", "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared",
    ),
    "signals or terminates other sessions": (
        "pg_terminate_backend", "pg_cancel_backend", "pg_log_backend_memory_contexts",
    ),
    "changes the server's state": (
        "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal", "pg_switch_xlog",
        "pg_create_restore_point", "pg_promote", "pg_wal_replay_pause", "pg_wal_replay_resume",
        "pg_xlog_replay_pause", "pg_xlog_replay_resume", "pg_backup_start", "pg_backup_stop",
        "pg_start_backup", "pg_stop_backup", "pg_import_system_collations",
        "pg_stat_reset", "pg_stat_reset_shared", "pg_stat_reset_single_table_counters",
        "pg_stat_reset_single_function_counters", "pg_stat_reset_slru",
        "pg_stat_reset_replication_slot", "pg_stat_reset_subscription_stats",
        "pg_stat_statements_reset",
    ),
    "changes a session setting": ("set_config",),
    "holds the connection without measuring anything": (
        "pg_sleep", "pg_sleep_for", "pg_sleep_until",
    ),
    "reads, writes or exports large objects": (
        "lo_import", "lo_export", "lo_create", "lo_creat", "lo_unlink", "lo_put",
        "lo_from_bytea", "lo_open", "lo_truncate", "lo_truncate64", "lowrite",
    ),
    "reads or writes files on the database server": (
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file",
        "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync",
    ),
    "runs SQL given as a string, which cannot be checked": (
        "dblink", "dblink_exec", "dblink_open", "dblink_fetch", "dblink_send_query",
        "dblink_connect", "dblink_connect_u", "query_to_xml", "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
    ),
    "sends a notification": ("pg_notify",),
    "assigns a transaction id": ("txid_current", "pg_current_xact_id"),
    "writes WAL or changes replication state": (
        "pg_logical_emit_message", "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot", "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot", "pg_copy_logical_replication_slot",
        "pg_replication_slot_advance", "pg_sync_replication_slots",
        "pg_logical_slot_get_changes", "pg_logical_slot_get_binary_changes",
        "pg_replication_origin_create", "pg_replication_origin_drop",
        "pg_replication_origin_advance", "pg_replication_origin_session_setup",
        "pg_replication_origin_session_reset", "pg_replication_origin_xact_setup",
        "pg_replication_origin_xact_reset",
    ),
}

SIDE_EFFECT_FUNCTIONS: frozenset[str] = frozenset(
    name for names in _SIDE_EFFECT_GROUPS.values() for name in names
)
"""Functions (lower case, without schema) that change something or hold the connection."""

_REASON_BY_NAME = {name: reason for reason, names in _SIDE_EFFECT_GROUPS.items() for name in names}

# Whole families, so that variants missing above (or added by later PostgreSQL versions) count too.
_SIDE_EFFECT_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"pg_(try_)?advisory_\w+"), "takes or releases an advisory lock"),
    (re.compile(r"lo_\w+"), "reads, writes or exports large objects"),
    (re.compile(r"dblink(_\w+)?"), "runs SQL given as a string, which cannot be checked"),
    (re.compile(r"pg_replication_origin_\w+"), "writes WAL or changes replication state"),
    (re.compile(r"pg_(create|copy)_\w+_replication_slot"),
     "writes WAL or changes replication state"),
    (re.compile(r"pg_stat_reset(_\w+)?"), "changes the server's state"),
    (re.compile(r"pg_sleep(_\w+)?"), "holds the connection without measuring anything"),
)


class UnsafeSql(ValueError):
    """The SQL is not one read-only statement; ``line`` and ``column`` (1-based) locate the part
    at fault when known."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.line = line
        self.column = column


class InvalidSql(UnsafeSql):
    """The SQL is empty or does not parse with PostgreSQL's grammar."""


def side_effect_reason(function_name: str) -> str | None:
    """What calling ``function_name`` (any case, schema or not) would do, or None if harmless."""
    name = function_name.rsplit(".", 1)[-1].lower()
    if name in _REASON_BY_NAME:
        return _REASON_BY_NAME[name]
    for pattern, reason in _SIDE_EFFECT_FAMILIES:
        if pattern.fullmatch(name):
            return reason
    return None


def check_read_only(sql: str) -> None:
    """Raise :class:`UnsafeSql` (:class:`InvalidSql` for syntax) unless ``sql`` is one read."""
    _check_statement(_single_statement(sql), sql)


def statement_kind(sql: str) -> str:
    """The command of the single statement in ``sql``: ``"SELECT"``, ``"SHOW"``, ``"INSERT"``,
    ``"CREATE TABLE"``, ... Raises like :func:`check_read_only` when it does not parse or holds
    several statements."""
    return _kind(_single_statement(sql))


# ---------------------------------------------------------------- parsing
def _single_statement(sql: str) -> ast.Node:
    statements = _parse(sql)
    if not statements:
        raise InvalidSql(f"The SQL holds no statement; configure one read-only query ({READS}).")
    if len(statements) > 1:
        where = _position(sql, statements[1].stmt_location)
        raise UnsafeSql(
            f"The SQL holds {len(statements)} statements (the second starts{_at(where)}); "
            "configure exactly one read-only statement per check, with nothing after a semicolon.",
            **where,
        )
    return statements[0].stmt


def _parse(sql: str) -> tuple[ast.RawStmt, ...]:
    try:
        return parse_sql(sql)
    except ParseError as error:
        message = error.args[0]
        index = error.args[1] if len(error.args) > 1 else None
        where = _position(sql, index)
        raise InvalidSql(
            f"The SQL does not parse with PostgreSQL's grammar: {message}{_at(where)}; "
            "fix the syntax (configured SQL is checked with PostgreSQL's grammar, "
            "even for SQLite).",
            **where,
        ) from None


def _position(sql: str, index: int | None) -> dict[str, int]:
    """Line and column (1-based) of a character index, or nothing when unknown."""
    if index is None or not 0 <= index <= len(sql):
        return {}
    line_start = sql.rfind("\n", 0, index) + 1
    return {"line": sql.count("\n", 0, index) + 1, "column": index - line_start + 1}


def _at(where: dict[str, int]) -> str:
    return f" at line {where['line']}, column {where['column']}" if where else ""


def _node_position(sql: str, node: ast.Node) -> dict[str, int]:
    location = getattr(node, "location", None)
    return _position(sql, location) if isinstance(location, int) and location >= 0 else {}


# ---------------------------------------------------------------- statements
_STATEMENT_REASONS: dict[type, str] = {
    ast.InsertStmt: "changes data",
    ast.UpdateStmt: "changes data",
    ast.DeleteStmt: "changes data",
    ast.MergeStmt: "changes data",
    ast.TruncateStmt: "changes data",
    ast.CopyStmt: "moves data in bulk and can write files or run programs on the server",
    ast.VariableSetStmt: (
        "changes session settings (SET TRANSACTION READ WRITE or "
        "SET default_transaction_read_only = off switch read-only mode off)"
    ),
    ast.TransactionStmt: "controls the transaction, which opsgate manages itself",
    ast.LockStmt: "takes table locks",
    ast.VacuumStmt: "does maintenance work that writes",
    ast.CallStmt: "runs a procedure, which can write",
    ast.DoStmt: "runs procedural code, which can write",
    ast.ListenStmt: "changes session state",
    ast.UnlistenStmt: "changes session state",
    ast.NotifyStmt: "sends a notification",
    ast.PrepareStmt: "creates a prepared statement",
    ast.ExecuteStmt: "runs a prepared statement, whose text cannot be checked",
}


def _check_statement(statement: ast.Node, sql: str) -> None:
    if isinstance(statement, ast.VariableShowStmt):
        return
    if isinstance(statement, ast.SelectStmt):
        _check_tree(statement, sql)
    elif isinstance(statement, ast.ExplainStmt):
        _check_explain(statement, sql)
    else:
        reason = _STATEMENT_REASONS.get(type(statement), "is not a read")
        raise UnsafeSql(
            f"{_kind(statement)} is not allowed because it {reason}; "
            f"configure a single read-only query ({READS})."
        )


def _check_explain(statement: ast.ExplainStmt, sql: str) -> None:
    if _explain_analyzes(statement.options or ()):
        raise UnsafeSql(
            "EXPLAIN ANALYZE is not allowed because it executes the statement it explains; "
            "drop ANALYZE (or set it to false), or run the SELECT itself."
        )
    query = statement.query
    if not isinstance(query, ast.SelectStmt):
        raise UnsafeSql(
            f"EXPLAIN of {_kind(query)} is not allowed; only a read-only SELECT may be explained."
        )
    _check_tree(query, sql)


def _explain_analyzes(options: tuple[ast.DefElem, ...]) -> bool:
    """True unless every ANALYZE option is explicitly false (PostgreSQL's defGetBoolean)."""
    return any(option.defname == "analyze" and not _is_false(option.arg) for option in options)


def _is_false(arg: ast.Node | None) -> bool:
    if isinstance(arg, ast.Integer):
        return arg.ival == 0
    if isinstance(arg, ast.Boolean):
        return not arg.boolval
    return isinstance(arg, ast.String) and arg.sval.lower() in {"false", "off"}


# ---------------------------------------------------------------- inside a read
def _check_tree(root: ast.Node, sql: str) -> None:
    for node in _walk(root):
        check = _NODE_CHECKS.get(type(node))
        if check is not None:
            check(node, sql)
        elif type(node).__name__.endswith("Stmt") and not isinstance(node, ast.SelectStmt):
            raise UnsafeSql(
                f"{_kind(node)} inside the query is not allowed; a check may only read."
            )


def _walk(root: ast.Node) -> Iterator[ast.Node]:
    """Every node under ``root`` (itself included), parents before children, left to right."""
    pending: list[object] = [root]
    while pending:
        item = pending.pop()
        if isinstance(item, tuple):
            pending.extend(reversed(item))
        elif isinstance(item, ast.Node):
            yield item
            pending.extend(reversed([getattr(item, member) for member in item]))


def _check_select(node: ast.SelectStmt, sql: str) -> None:
    if node.intoClause is not None:
        raise UnsafeSql(
            "SELECT ... INTO is not allowed because it creates a table; remove the INTO clause."
        )
    if node.lockingClause:
        clause = _LOCK_CLAUSES.get(node.lockingClause[0].strength, "FOR UPDATE")
        raise UnsafeSql(
            f"SELECT ... {clause} is not allowed because it locks rows; "
            "remove the locking clause, a check must only read."
        )


_LOCK_CLAUSES = {
    enums.LockClauseStrength.LCS_FORKEYSHARE: "FOR KEY SHARE",
    enums.LockClauseStrength.LCS_FORSHARE: "FOR SHARE",
    enums.LockClauseStrength.LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE",
    enums.LockClauseStrength.LCS_FORUPDATE: "FOR UPDATE",
}


def _check_cte(node: ast.CommonTableExpr, sql: str) -> None:
    if isinstance(node.ctequery, ast.SelectStmt):
        return
    where = _node_position(sql, node)
    raise UnsafeSql(
        f'The WITH query "{node.ctename}" is a {_kind(node.ctequery)} (a data-modifying WITH)'
        f"{_at(where)} and is not allowed; every WITH query must be a SELECT.",
        **where,
    )


def _check_call(node: ast.FuncCall, sql: str) -> None:
    name = ".".join(part.sval for part in node.funcname)
    reason = side_effect_reason(name)
    if reason is None:
        return
    where = _node_position(sql, node)
    raise UnsafeSql(
        f"{name}() is not allowed because it {reason}{_at(where)}; "
        "remove the call, a check must only read.",
        **where,
    )


_NODE_CHECKS: dict[type, Callable[..., None]] = {
    ast.SelectStmt: _check_select,
    ast.CommonTableExpr: _check_cte,
    ast.FuncCall: _check_call,
}


# ---------------------------------------------------------------- statement kinds
def _select_kind(node: ast.SelectStmt) -> str:
    if node.intoClause is not None:
        return "SELECT INTO"
    return "VALUES" if node.valuesLists else "SELECT"


def _set_kind(node: ast.VariableSetStmt) -> str:
    resets = {enums.VariableSetKind.VAR_RESET, enums.VariableSetKind.VAR_RESET_ALL}
    if node.kind in resets:
        return "RESET"
    return "SET TRANSACTION" if node.name == "TRANSACTION" else "SET"


def _transaction_kind(node: ast.TransactionStmt) -> str:
    word = node.kind.name.removeprefix("TRANS_STMT_").replace("_", " ")
    return {"START": "START TRANSACTION", "PREPARE": "PREPARE TRANSACTION"}.get(word, word)


def _create_as_kind(node: ast.CreateTableAsStmt) -> str:
    if node.objtype == enums.ObjectType.OBJECT_MATVIEW:
        return "CREATE MATERIALIZED VIEW"
    return "CREATE TABLE AS"


_KINDS: dict[type, Callable[..., str]] = {
    ast.SelectStmt: _select_kind,
    ast.VariableSetStmt: _set_kind,
    ast.TransactionStmt: _transaction_kind,
    ast.CreateTableAsStmt: _create_as_kind,
    ast.VacuumStmt: lambda node: "VACUUM" if node.is_vacuumcmd else "ANALYZE",
    ast.GrantStmt: lambda node: "GRANT" if node.is_grant else "REVOKE",
    ast.FetchStmt: lambda node: "MOVE" if node.ismove else "FETCH",
}

_KIND_NAMES = {
    "VariableShowStmt": "SHOW", "CreateStmt": "CREATE TABLE", "IndexStmt": "CREATE INDEX",
    "ViewStmt": "CREATE VIEW", "CreateSeqStmt": "CREATE SEQUENCE", "AlterSeqStmt": "ALTER SEQUENCE",
    "RuleStmt": "CREATE RULE", "CheckPointStmt": "CHECKPOINT", "ClosePortalStmt": "CLOSE",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW", "SecLabelStmt": "SECURITY LABEL",
    "DeclareCursorStmt": "DECLARE", "CreateFunctionStmt": "CREATE FUNCTION",
}


def _kind(node: ast.Node) -> str:
    special = _KINDS.get(type(node))
    if special is not None:
        return special(node)
    name = type(node).__name__
    if name in _KIND_NAMES:
        return _KIND_NAMES[name]
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]*", name.removesuffix("Stmt"))
    return " ".join(words).upper()
