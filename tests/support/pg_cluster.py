"""Throwaway PostgreSQL clusters for the suite's own tests (a pytest plugin module).

``pg_clusters`` (module scope) is a factory::

    primary = pg_clusters(max_connections=20)
    replica = pg_clusters(standby_of=primary)    # streams from primary, in recovery

The first call runs ``initdb`` once into a template (trust authentication, as the ``postgres``
user when the tests run as root); every cluster is a copy of that template on a free loopback
port, started with ``pg_ctl``. A standby is a copy of the same template with
``standby.signal`` and ``primary_conninfo`` pointing at its primary, so ``pg_is_in_recovery()``
is really true and it replays what the primary writes. Every cluster is stopped and its
folder removed at teardown, also when a test fails. A missing ``initdb`` FAILS the tests that
need it (never a skip).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.prometheus import free_port

HOST = "127.0.0.1"
SUPERUSER = "postgres"
START_TIMEOUT = 30


@dataclass(frozen=True)
class Cluster:
    """One running throwaway cluster."""

    data: Path
    port: int
    standby: bool

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of ``dbname``, as an environment file writes it."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq connection string to ``dbname``."""
        return psycopg.conninfo.make_conninfo(host=HOST, port=self.port, user=SUPERUSER,
                                              dbname=dbname, connect_timeout=5,
                                              application_name="opsgate-tests")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        """An autocommit connection to ``dbname`` (the caller closes it)."""
        return psycopg.connect(self.conninfo(dbname), autocommit=True)


def _bindir() -> Path:
    """The newest PostgreSQL bin folder with initdb and pg_ctl; fails the test when none."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).parent)
    found = [d for d in found if (d / "pg_ctl").is_file()]
    if not found:
        pytest.fail("initdb/pg_ctl not found (looked in /usr/lib/postgresql/*/bin and PATH): "
                    "install PostgreSQL 15 (apt-get install -y postgresql) or run "
                    "scripts/ensure-services", pytrace=False)
    return max(found, key=lambda d: [int(n) for n in re.findall(r"\d+", str(d))] or [0])


class ClusterFactory:
    """Creates clusters under one temporary folder; :meth:`close` stops and removes them."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        # PostgreSQL refuses to run as root: as root, the clusters belong to ``postgres``.
        self.owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        self.prefix = ["runuser", "-u", "postgres", "--"] if self.owner else []
        self.base = Path(tempfile.mkdtemp(prefix="opsgate-pg-"))
        self.clusters: list[Cluster] = []
        self.template: Path | None = None
        self._own(self.base)

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._own(path)

    def _run(self, *command: str, what: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.prefix, *command], capture_output=True, text=True,
                              timeout=START_TIMEOUT + 30, stdin=subprocess.DEVNULL)
        if done.returncode != 0 and what:
            pytest.fail(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n"
                        f"{(done.stdout + done.stderr)[-2000:]}", pytrace=False)
        return done

    def _template(self) -> Path:
        if self.template is None:
            self.template = self.base / "template"
            self._run(str(self.bindir / "initdb"), "-D", str(self.template), "-A", "trust",
                      "-U", SUPERUSER, "-E", "UTF8", "--no-sync", what="initdb")
        return self.template

    def __call__(self, max_connections: int | None = None,
                 standby_of: Cluster | None = None) -> Cluster:
        """A started cluster (a streaming standby of ``standby_of`` when given).

        ``max_connections`` defaults to initdb's choice (a standby needs at least its
        primary's value, and it first replays the template's).
        """
        template = self._template()
        data = self.base / f"cluster-{len(self.clusters)}"
        self._run("cp", "-a", str(template), str(data), what="copying the template")
        settings = ["fsync = off", f"unix_socket_directories = '{self.base}'",
                    f"listen_addresses = '{HOST}'"]
        if max_connections is not None:
            settings.append(f"max_connections = {max_connections}")
        if standby_of is not None:
            settings.append(f"primary_conninfo = 'host={HOST} port={standby_of.port} "
                            f"user={SUPERUSER} application_name={data.name}'")
            self._write(data / "standby.signal", "")
        for attempt in range(3):  # another process may take the free port first
            port = free_port()
            self._write(data / "postgresql.auto.conf",
                        "\n".join([*settings, f"port = {port}"]) + "\n")
            log = data / "server.log"
            done = self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                             "-t", str(START_TIMEOUT), "start", what="")
            if done.returncode == 0:
                cluster = Cluster(data, port, standby_of is not None)
                self.clusters.append(cluster)
                return cluster
            text = log.read_text(errors="replace") if log.exists() else ""
            if "could not bind" not in text or attempt == 2:
                pytest.fail(f"pg_ctl start failed (exit {done.returncode}):\n"
                            f"{(done.stdout + done.stderr + text)[-2000:]}", pytrace=False)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop every cluster (immediate shutdown) and remove the folder."""
        for cluster in self.clusters:
            with contextlib.suppress(Exception):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(cluster.data), "-m",
                          "immediate", "-w", "stop", what="")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_clusters() -> Iterator[ClusterFactory]:
    """``start(max_connections=None, standby_of=None) -> Cluster``, shared by a test module."""
    factory = ClusterFactory()
    try:
        yield factory
    finally:
        factory.close()


def wait_until(cluster: Cluster, query: str, timeout: float = 10.0,
               dbname: str = "postgres") -> None:
    """Poll ``query`` (one boolean) on ``cluster`` until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    with cluster.connect(dbname) as connection:
        while not connection.execute(query).fetchone()[0]:
            if time.monotonic() > deadline:
                pytest.fail(f"never true on port {cluster.port} within {timeout:g} s: {query}",
                            pytrace=False)
            time.sleep(0.05)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test that starts a cluster the ``postgres`` marker."""
    for item in items:
        if "pg_clusters" in getattr(item, "fixturenames", ()) and \
                item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
