"""SQL probe: a scalar query, or a violations query counted and sampled by the database.

A violations query is wrapped so the database returns the total number of violators and at
most ``sample`` of them in one round trip; no table is ever pulled into Python. A watchdog
cancels a PostgreSQL query that outlives the check's deadline (a silent network, a server
that ignores its own timeouts); SQLite queries are interrupted by a progress handler.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from opsgate.deadline import Deadline
from opsgate.errors import ProbeConnectionError, ProbeError, ProbeQueryError, ProbeTimeout
from opsgate.observation import Observation, Subject, utcnow

TOTAL_COLUMN = "_opsgate_total"


def violations_sql(query: str) -> str:
    """``query`` wrapped to return its row count beside each of its first rows."""
    return (f"select count(*) over () as {TOTAL_COLUMN}, v.* from ({_strip(query)}) as v "
            f"limit :opsgate_sample")


def _strip(query: str) -> str:
    return query.strip().rstrip(";").strip()


def probe_scalar(engine: Engine, query: str, deadline: Deadline, *,
                 label: str = "value") -> Observation:
    """One row, one value: the first column of the only row."""
    started = utcnow()
    asked = {"sql": _strip(query), "database": engine.url.render_as_string(hide_password=True)}
    begin = time.perf_counter()
    columns, rows = _run(engine, _strip(query), {}, deadline, asked, limit=2)
    elapsed = round((time.perf_counter() - begin) * 1000, 1)
    seen = {"columns": columns, "rows": rows, "elapsed_ms": elapsed}
    if not rows:
        raise _no_data("the query returned no row; a scalar query must return one", asked, seen)
    if len(rows) > 1:
        raise _no_data("the query returned more than one row; a scalar query must return "
                       "exactly one (aggregate, or add a WHERE)", asked, seen)
    value = rows[0][columns[0]]
    return Observation("sql", asked, seen, {"value": value}, [Subject(label, value)],
                       started_at=started, finished_at=utcnow())


def probe_violations(engine: Engine, query: str, sample: int, deadline: Deadline) -> Observation:
    """The number of violating rows and a sample of at most ``sample`` of them."""
    started = utcnow()
    asked = {"sql": _strip(query), "database": engine.url.render_as_string(hide_password=True),
             "sample": sample}
    begin = time.perf_counter()
    columns, rows = _run(engine, violations_sql(query), {"opsgate_sample": sample}, deadline,
                         asked)
    elapsed = round((time.perf_counter() - begin) * 1000, 1)
    total = int(rows[0][TOTAL_COLUMN]) if rows else 0
    sample_rows = [{k: v for k, v in row.items() if k != TOTAL_COLUMN} for row in rows]
    seen = {"columns": [c for c in columns if c != TOTAL_COLUMN], "rows": sample_rows,
            "total": total, "elapsed_ms": elapsed}
    return Observation("sql", asked, seen, {"violations": total},
                       [Subject("violations", total)], started_at=started, finished_at=utcnow())


def query_rows(engine: Engine, query: str, deadline: Deadline,
               limit: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``query`` as dicts (for opsgate's own catalog queries)."""
    asked = {"sql": _strip(query)}
    return _run(engine, _strip(query), {}, deadline, asked, limit=limit)[1]


def _no_data(message: str, asked: dict[str, Any], seen: dict[str, Any]) -> ProbeError:
    from opsgate.errors import NoData

    return NoData(message, asked=asked, seen=seen)


def _run(engine: Engine, sql: str, params: dict[str, Any], deadline: Deadline,
         asked: dict[str, Any], limit: int | None = None) -> tuple[list[str], list[dict]]:
    try:
        deadline.check("waiting for a database connection")
        with engine.connect() as conn, _watchdog(conn, deadline):
            result = conn.execute(text(sql), params)
            columns = list(result.keys())
            raw = result.fetchmany(limit) if limit else result.fetchall()
            _release_session_locks(conn)
            conn.rollback()
    except ProbeError as exc:
        exc.asked = asked
        raise
    except sa_exc.DBAPIError as exc:
        raise _map_error(exc, deadline, asked) from exc
    except sa_exc.TimeoutError as exc:  # the pool had no free connection in time
        raise ProbeTimeout("timed out waiting for a free database connection",
                           asked=asked) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise ProbeQueryError(f"the database rejected the query: {exc}", asked=asked) from exc
    return columns, [dict(zip(columns, row, strict=True)) for row in raw]


def _release_session_locks(conn: Connection) -> None:
    """A function may take a session-level advisory lock even in a read-only transaction;
    opsgate must not keep it on a pooled connection (that is the stuck-job incident)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("select pg_advisory_unlock_all()"))


def _map_error(exc: sa_exc.DBAPIError, deadline: Deadline, asked: dict[str, Any]) -> ProbeError:
    original = exc.orig
    message = str(original).strip().splitlines()[0] if original else str(exc)
    sqlstate = getattr(original, "sqlstate", None) or ""
    if sqlstate == "57014" or deadline.expired or "interrupted" in message:
        return ProbeTimeout(f"the query was cancelled at its deadline: {message}", asked=asked)
    if sqlstate == "55P03":
        return ProbeTimeout(f"lock timeout: the query waited too long for a lock ({message})",
                            asked=asked)
    if exc.connection_invalidated or sqlstate.startswith("08") or (
            isinstance(exc, sa_exc.OperationalError) and not sqlstate):
        return ProbeConnectionError(f"could not reach the database: {message}", asked=asked)
    return ProbeQueryError(f"the database rejected the query ({sqlstate or 'error'}): "
                           f"{message}", asked=asked)


@contextmanager
def _watchdog(conn: Connection, deadline: Deadline) -> Iterator[None]:
    """Cancel the running query when the deadline passes, from another thread."""
    dbapi = conn.connection.dbapi_connection
    if hasattr(dbapi, "cancel_safe"):  # psycopg 3
        def cancel() -> None:
            # the connection may be gone already; there is nothing else to do then
            with contextlib.suppress(Exception):
                dbapi.cancel_safe(timeout=2.0)

        timer = threading.Timer(deadline.remaining(), cancel)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
        return
    end = deadline.end
    dbapi.set_progress_handler(lambda: int(time.monotonic() >= end), 1000)  # sqlite3
    try:
        yield
    finally:
        dbapi.set_progress_handler(None, 0)
