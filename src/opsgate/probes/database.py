"""Database engines that cannot write: read-only sessions with server and client deadlines.

PostgreSQL sessions start with ``default_transaction_read_only=on``, ``statement_timeout``,
``lock_timeout``, ``idle_in_transaction_session_timeout`` and ``application_name=opsgate/<run
id>``; TCP keepalives and ``tcp_user_timeout`` end a connection whose peer went silent. SQLite
files are opened read-only (``mode=ro`` and ``PRAGMA query_only``). The pool holds at most
``max_connections`` connections (default 2) and never more.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url


def make_engine(target: Any, run_id: str) -> Engine:
    """An engine for ``target`` (a ``DatabaseTarget``) that opens read-only sessions."""
    url = make_url(target.url)
    pool = {"pool_size": target.max_connections, "max_overflow": 0,
            "pool_timeout": target.connect_timeout + target.statement_timeout}
    if url.get_backend_name() == "sqlite":
        engine = create_engine(_sqlite_read_only(url), **pool)
        event.listen(engine, "connect", _sqlite_query_only)
        return engine
    return create_engine(url.set(drivername="postgresql+psycopg"),
                         connect_args=_postgres_connect_args(target, run_id), **pool)


def _postgres_connect_args(target: Any, run_id: str) -> dict[str, Any]:
    options = {
        "default_transaction_read_only": "on",
        "statement_timeout": f"{int(target.statement_timeout * 1000)}",
        "lock_timeout": f"{int(target.lock_timeout * 1000)}",
        "idle_in_transaction_session_timeout": f"{int(target.idle_in_transaction_timeout * 1000)}",
    }
    silent_ms = int((target.statement_timeout + target.connect_timeout) * 1000)
    return {
        "application_name": f"opsgate/{run_id}"[:63],
        "connect_timeout": max(round(target.connect_timeout), 1),
        "options": " ".join(f"-c {name}={value}" for name, value in options.items()),
        "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2,
        "tcp_user_timeout": silent_ms,
    }


def _sqlite_read_only(url: URL) -> str:
    """``sqlite:///path`` as a read-only URI; a missing file is an error, not a new database."""
    database = url.database or ""
    if database in ("", ":memory:"):
        return "sqlite://"
    return f"sqlite:///file:{database}?mode=ro&uri=true"


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()


def describe_url(url: str) -> str:
    """The URL without its password, for evidence."""
    return make_url(url).render_as_string(hide_password=True)
