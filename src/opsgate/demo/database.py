"""The demo's database: engines for SQLite or PostgreSQL, and a schema reset at each start.

The demo owns its database. It creates its tables in an empty database and drops and
recreates them when its marker table says it made them; any other database with tables is
refused, so pointing ``--db`` at a real system's database cannot destroy it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url

from opsgate.demo.tables import demo_meta, metadata

DEFAULT_URL = "sqlite:///.opsgate-demo/demo.sqlite"
SCHEMA = "opsgate-demo/1"


class DemoDatabaseError(RuntimeError):
    """The database cannot be used by the demo (not the demo's, or unreachable)."""


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A datetime read back from the database as aware UTC (SQLite returns naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def backend(url: str | URL) -> str:
    """``sqlite`` or ``postgresql``; DemoDatabaseError for anything else."""
    name = make_url(url).get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise DemoDatabaseError(f"the demo runs on sqlite or postgresql, not {name}")
    return name


def open_engine(url: str | URL) -> Engine:
    """An engine for the demo's own writes: WAL and immediate transactions on SQLite."""
    parsed = make_url(url)
    if backend(parsed) == "postgresql":
        return create_engine(parsed.set(drivername="postgresql+psycopg"), pool_size=8,
                             max_overflow=16, pool_pre_ping=True,
                             connect_args={"application_name": "opsgate-demo",
                                           "connect_timeout": 3})
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, pool_size=8, max_overflow=16,
                           connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # transactions are begun explicitly below, so pysqlite must not begin its own
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: no deadlock when a reader later writes
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def unreachable_url(url: str | URL) -> URL:
    """A URL for the same database that cannot be opened (the ``db_error`` fault)."""
    parsed = make_url(url)
    if backend(parsed) == "postgresql":
        return parsed.set(drivername="postgresql+psycopg", port=1)
    return make_url("sqlite:///file:/nonexistent/opsgate-demo/volume.sqlite?mode=rw&uri=true")


def reset_schema(engine: Engine) -> None:
    """Create the demo's tables, dropping its own earlier ones; refuse a foreign database."""
    try:
        existing = set(inspect(engine).get_table_names())
    except Exception as exc:
        raise DemoDatabaseError(f"cannot open the demo database: {exc}") from exc
    if existing and demo_meta.name not in existing:
        shown = ", ".join(sorted(existing)[:5]) + (", ..." if len(existing) > 5 else "")
        raise DemoDatabaseError(
            f"the database at {engine.url.render_as_string(hide_password=True)} already has "
            f"tables the demo did not create ({shown}); give the demo an empty database")
    with engine.begin() as conn:
        metadata.drop_all(conn, checkfirst=True)
        metadata.create_all(conn)
        conn.execute(demo_meta.insert().values(key="schema", value=SCHEMA))
