"""SQL names and small SQL fragments written in an environment file, validated and quoted.

Ready-made checks (``kind: invariant``, ``kind: postgres``) generate their SQL from table and
column names given in YAML. Those names never reach the database as written: each is validated
as a plain identifier (``[A-Za-z_][A-Za-z0-9_]*``, at most 63 characters, PostgreSQL's limit),
optionally qualified once (``schema.table``), and then always double-quoted. Quoting keeps the
case as written and makes reserved words usable (``"order"``, ``"user"``): write names as the
database stores them (PostgreSQL folds unquoted names to lower case when tables are created).

A ``where`` expression is user SQL. :func:`validate_where` accepts a conservative subset: one
boolean expression with balanced parentheses and quotes and no statement separator, comment,
backslash, dollar quote or parameter marker (so it cannot close the parentheses it is wrapped
in), and then has the SQL guard (``opsgate.config.sqlguard``, PostgreSQL's own parser) check
``select 1 where (EXPRESSION)`` as one read without side-effect calls (``pg_terminate_backend``,
``set_config``, ``nextval``, advisory locks, ...).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

MAX_IDENTIFIER = 63
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORBIDDEN = {";": "a statement separator ';'", "--": "a comment '--'", "/*": "a comment '/*'",
              "\\": "a backslash", "$": "a '$' (dollar quote or parameter)",
              "?": "a '?' (parameter marker)", ":": "a ':' (a parameter; '::' casts are fine)"}


def validate_identifier(name: object) -> str:
    """``name`` when it is one plain identifier; ValueError saying what is wrong otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"a table or column name is a string, got {name!r}")
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier: use letters, digits and '_', "
                         "starting with a letter or '_' (no spaces, quotes, dots or operators)")
    if len(name) > MAX_IDENTIFIER:
        raise ValueError(f"{name!r} is longer than {MAX_IDENTIFIER} characters")
    return name


def validate_qualified(name: object) -> str:
    """``table`` or ``schema.table``, each part a plain identifier."""
    if not isinstance(name, str):
        raise ValueError(f"a table name is a string, got {name!r}")
    parts = name.split(".")
    if len(parts) > 2:
        raise ValueError(f"{name!r}: write 'table' or 'schema.table' (at most one dot)")
    for part in parts:
        try:
            validate_identifier(part)
        except ValueError as exc:
            raise ValueError(f"{name!r}: {exc}") from None
    return name


def quote_identifier(name: str) -> str:
    """``"name"``: a validated identifier, double-quoted."""
    return '"' + validate_identifier(name).replace('"', '""') + '"'


def quote_qualified(name: str) -> str:
    """``"schema"."table"`` or ``"table"``."""
    validate_qualified(name)
    return ".".join(quote_identifier(part) for part in name.split("."))


def quote_literal(value: str) -> str:
    """``'value'`` as a SQL string literal (quotes doubled; backslashes refused)."""
    if "\\" in value or "\x00" in value:
        raise ValueError(f"{value!r}: backslashes and NUL are not allowed in a SQL literal")
    return "'" + value.replace("'", "''") + "'"


def validate_where(expression: object) -> str:
    """A conservative boolean SQL expression (see the module docstring); ValueError otherwise."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValueError("'where' is a SQL boolean expression such as \"status = 'failed'\"")
    outside = _outside_quotes(expression)
    for token, what in _FORBIDDEN.items():
        if token in outside.replace("::", "  "):
            raise ValueError(f"'where' may not contain {what}: {expression!r}")
    _balanced(outside, expression)
    _guarded(expression.strip())
    return expression.strip()


def _guarded(expression: str) -> None:
    """The SQL guard's verdict on ``select 1 where (expression)``."""
    from opsgate.config.sqlguard import UnsafeSql, check_read_only

    try:
        check_read_only(f"select 1 where ({expression})")
    except UnsafeSql as exc:
        reason = str(exc).split(" at line ")[0].removesuffix(".")
        raise ValueError(f"'where' {expression!r} is not a read-only boolean expression: "
                         f"{reason}") from None


def _outside_quotes(expression: str) -> str:
    """``expression`` with the content of '...' and "..." blanked; ValueError if unterminated."""
    if "\\" in expression:
        raise ValueError(f"'where' may not contain {_FORBIDDEN[chr(92)]}: {expression!r}")
    result, quote = [], None
    index = 0
    while index < len(expression):
        char = expression[index]
        if quote is None:
            if char in "'\"":
                quote = char
            result.append(char)
        elif char == quote and expression[index + 1:index + 2] == quote:
            result.append("  ")
            index += 1
        elif char == quote:
            quote = None
            result.append(char)
        else:
            result.append(" ")
        index += 1
    if quote is not None:
        raise ValueError(f"'where' has an unterminated {quote} quote: {expression!r}")
    return "".join(result)


def _balanced(outside: str, expression: str) -> None:
    depth = 0
    for char in outside:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise ValueError(f"'where' closes a parenthesis it did not open: {expression!r}")
    if depth:
        raise ValueError(f"'where' leaves a parenthesis open: {expression!r}")


Identifier = Annotated[str, AfterValidator(validate_identifier)]
QualifiedName = Annotated[str, AfterValidator(validate_qualified)]
WhereClause = Annotated[str, AfterValidator(validate_where)]
