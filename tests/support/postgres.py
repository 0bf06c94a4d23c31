"""The real PostgreSQL on 127.0.0.1:5432 for the suite's own tests (a pytest plugin module).

``pg_url`` gives each test a fresh, uniquely named database and drops it afterwards;
``pg_admin`` is an autocommit connection to that database for creating tables and rows and for
holding locks while a check runs; ``pg_database`` has both plus ``connect()`` for more
connections. When the server does not answer, the session tries once to start the local
cluster (``pg_ctlcluster``); when it still does not answer every test that needs it FAILS (it is
never skipped: a skipped test is no coverage). Tests that use these fixtures get the
``postgres`` marker, so ``-m postgres`` selects them.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

HOST = "127.0.0.1"
PORT = 5432
CONNECT_TIMEOUT = 3
START_WAIT = 30.0
#: Roles tried in order (trust authentication); ``OPSGATE_TEST_PGUSER`` names another.
USERS = ("postgres", "root")
#: Databases tried in order for the administrative connection.
ADMIN_DATABASES = ("postgres", "test", "root")
PREFIX = "opsgate_test_"
FIXTURES = {"pg_url", "pg_admin", "pg_database", "postgres_server"}


@dataclass(frozen=True)
class PostgresServer:
    """Where the server answered: the role and the database for administrative work."""

    user: str
    admin_dbname: str

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string to ``dbname`` (default: the administrative database)."""
        return psycopg.conninfo.make_conninfo(
            host=HOST, port=PORT, user=self.user, dbname=dbname or self.admin_dbname,
            connect_timeout=CONNECT_TIMEOUT, application_name="opsgate-tests")

    def connect(self, dbname: str | None = None) -> psycopg.Connection:
        """An autocommit connection to ``dbname``."""
        return psycopg.connect(self.conninfo(dbname), autocommit=True)


@dataclass
class PgDatabase:
    """A fresh database that lives as long as one test."""

    server: PostgresServer
    name: str
    _connections: list[psycopg.Connection] = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        """Its SQLAlchemy URL, as an environment file writes it."""
        return f"postgresql+psycopg://{self.server.user}@{HOST}:{PORT}/{self.name}"

    @property
    def conninfo(self) -> str:
        """Its libpq connection string."""
        return self.server.conninfo(self.name)

    def connect(self) -> psycopg.Connection:
        """Another autocommit connection to it, closed when the test ends."""
        connection = self.server.connect(self.name)
        self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every connection opened through :meth:`connect`."""
        for connection in self._connections:
            with contextlib.suppress(Exception):
                connection.close()
        self._connections.clear()


# ---------------------------------------------------------------- reaching the server
def _candidate_users() -> list[str]:
    chosen = os.environ.get("OPSGATE_TEST_PGUSER")
    return [chosen] if chosen else list(USERS)


def _probe() -> tuple[PostgresServer | None, str]:
    """The first role and database that connect, or None with the last error."""
    last = "no connection was attempted"
    for user in _candidate_users():
        for dbname in ADMIN_DATABASES:
            server = PostgresServer(user, dbname)
            try:
                with psycopg.connect(server.conninfo()) as connection:
                    connection.execute("select 1")
                return server, ""
            except psycopg.OperationalError as exc:
                last = f"{user}@{HOST}:{PORT}/{dbname}: {' '.join(str(exc).split())}"
    return None, last


def _listening() -> bool:
    """Whether something accepts TCP connections on the server's port."""
    try:
        with socket.create_connection((HOST, PORT), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def _start_cluster() -> str:
    """Start the local cluster once with pg_ctlcluster; a sentence on what was done."""
    tool = shutil.which("pg_ctlcluster")
    config = Path("/etc/postgresql")
    if tool is None or not config.is_dir():
        return "pg_ctlcluster or /etc/postgresql is missing, so no cluster could be started"
    versions = sorted((p.name for p in config.iterdir() if (p / "main").is_dir()),
                      key=lambda v: [int(n) for n in re.findall(r"\d+", v)] or [0])
    if not versions:
        return "no cluster 'main' under /etc/postgresql"
    command = [tool, "--skip-systemctl-redirect", versions[-1], "main", "start"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{' '.join(command)}` could not run: {exc}"
    output = (done.stdout + done.stderr).strip().replace("\n", " ").rstrip(".")
    return f"`{' '.join(command)}` exited {done.returncode}{': ' + output if output else ''}"


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The PostgreSQL server on 127.0.0.1:5432, started once when it is down.

    Fails (never skips) every test that needs it when it cannot be reached.
    """
    server, problem = _probe()
    if server is None and _listening() and "starting up" not in problem:
        pytest.fail(f"PostgreSQL on {HOST}:{PORT} refused the tests' connection ({problem}); "
                    "it needs trust authentication for 127.0.0.1 and a role named "
                    f"{' or '.join(_candidate_users())}.", pytrace=False)
    if server is None:
        attempt = _start_cluster()
        deadline = time.monotonic() + START_WAIT
        while server is None and time.monotonic() < deadline:
            time.sleep(0.5)
            server, problem = _probe()
        if server is None:
            pytest.fail(
                f"PostgreSQL does not answer on {HOST}:{PORT} ({problem}); tried to start it: "
                f"{attempt}. Run scripts/ensure-services (as root) or start PostgreSQL 15 with "
                "trust authentication for 127.0.0.1.", pytrace=False)
    _drop_orphans(server)
    return server


def _drop_orphans(server: PostgresServer) -> None:
    """Drop test databases left by earlier sessions whose process is gone."""
    with server.connect() as connection:
        names = [row[0] for row in connection.execute(
            "select datname from pg_database where datname like %s", (PREFIX + "%",))]
        for name in names:
            match = re.match(rf"^{PREFIX}(\d+)_", name)
            if match and not _alive(int(match.group(1))):
                with contextlib.suppress(psycopg.Error):
                    connection.execute(sql.SQL("drop database if exists {} with (force)")
                                       .format(sql.Identifier(name)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- per-test databases
@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[PgDatabase]:
    """A fresh database for one test, dropped (WITH (FORCE)) when the test ends."""
    name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with postgres_server.connect() as connection:
        connection.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    database = PgDatabase(postgres_server, name)
    try:
        yield database
    finally:
        database.close()
        with postgres_server.connect() as connection:
            connection.execute(sql.SQL("drop database if exists {} with (force)")
                               .format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_database: PgDatabase) -> str:
    """The SQLAlchemy URL of a fresh database: ``postgresql+psycopg://USER@127.0.0.1:5432/NAME``."""
    return pg_database.url


@pytest.fixture
def pg_admin(pg_database: PgDatabase) -> psycopg.Connection:
    """An autocommit psycopg connection to the test's database (the same one as ``pg_url``).

    Use ``with pg_admin.transaction(): ...`` to hold a lock while a check runs.
    """
    return pg_database.connect()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test that uses the server the ``postgres`` marker."""
    for item in items:
        if FIXTURES & set(getattr(item, "fixturenames", ())) and \
                item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
