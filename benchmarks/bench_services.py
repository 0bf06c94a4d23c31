"""The benchmark's real services: a cached PostgreSQL ledger database and a Prometheus.

PostgreSQL is the server on 127.0.0.1:5432 (trust authentication, role ``postgres`` or
``root``, or ``OPSGATE_BENCH_PGUSER``). The ledger database ``opsgate_bench_ledger_<size>`` is
generated once (``insert ... select generate_series`` in one statement, then ``vacuum
analyze``) and reused while it holds the right row count; ``drop_ledgers()`` removes them.

Prometheus is Debian's ``prometheus`` over data backfilled with ``promtool tsdb
create-blocks-from openmetrics``, started on a free loopback port and stopped by ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
from bench_common import HOST, log
from psycopg import sql

PORT = 5432
USERS = ("postgres", "root")
LEDGER_PREFIX = "opsgate_bench_ledger_"


# ---------------------------------------------------------------- PostgreSQL
def pg_user() -> str:
    """The first role that connects to the server with trust authentication."""
    candidates = [os.environ["OPSGATE_BENCH_PGUSER"]] if os.environ.get(
        "OPSGATE_BENCH_PGUSER") else list(USERS)
    problems = []
    for user in candidates:
        try:
            with psycopg.connect(conninfo(user, "postgres"), connect_timeout=3):
                return user
        except psycopg.OperationalError as exc:
            problems.append(f"{user}: {' '.join(str(exc).split())}")
    raise RuntimeError(f"PostgreSQL on {HOST}:{PORT} did not accept "
                       f"{' or '.join(candidates)} ({'; '.join(problems)}); run "
                       "scripts/ensure-services")


def conninfo(user: str, dbname: str) -> str:
    return f"host={HOST} port={PORT} user={user} dbname={dbname} application_name=opsgate-bench"


@dataclass(frozen=True)
class Ledger:
    """A generated ledger database and what is known about it."""

    user: str
    name: str
    rows: int
    accounts: int
    violators: int
    built_seconds: float | None  # None: reused from an earlier run

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{HOST}:{PORT}/{self.name}"


def ledger_name(rows: int) -> str:
    return f"{LEDGER_PREFIX}{rows // 1_000_000}m" if rows >= 1_000_000 else \
        f"{LEDGER_PREFIX}{rows // 1000}k"


def ledger(rows: int, accounts: int, violators: tuple[int, ...]) -> Ledger:
    """The cached ledger database of ``rows`` entries, generated when missing or wrong."""
    user = pg_user()
    name = ledger_name(rows)
    if _complete(user, name, rows):
        log(f"reusing database {name} ({rows:,} ledger rows)")
        return Ledger(user, name, rows, accounts, len(violators), None)
    log(f"generating database {name}: {rows:,} ledger rows over {accounts:,} accounts "
        "(once; later runs reuse it, --drop removes it)")
    begin = time.perf_counter()
    _recreate(user, name)
    with psycopg.connect(conninfo(user, name), autocommit=True) as conn:
        for statement in _ledger_statements(rows, accounts, violators):
            conn.execute(statement)
    return Ledger(user, name, rows, accounts, len(violators), time.perf_counter() - begin)


def _complete(user: str, name: str, rows: int) -> bool:
    """Whether ``name`` exists with its load finished and exactly ``rows`` ledger rows."""
    try:
        with psycopg.connect(conninfo(user, name), connect_timeout=3) as conn:
            meta = conn.execute("select rows from bench_meta").fetchone()
            counted = conn.execute("select count(*) from ledger_entries").fetchone()
    except psycopg.Error:
        return False
    return meta is not None and meta[0] == rows and counted is not None and counted[0] == rows


def _recreate(user: str, name: str) -> None:
    with psycopg.connect(conninfo(user, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def _ledger_statements(rows: int, accounts: int, violators: tuple[int, ...]) -> list[str]:
    """Entries spread over every account; balances equal their sums except ``violators``."""
    drifted = ", ".join(str(n) for n in violators)
    return [
        "create table accounts (id integer primary key, balance numeric(14,2))",
        "create table ledger_entries (id bigint primary key, account_id integer not null, "
        "amount numeric(12,2) not null)",
        f"insert into ledger_entries (id, account_id, amount) "
        f"select g, 1 + (g % {accounts}), ((g * 7919) % 20001 - 10000) / 100.0 "
        f"from generate_series(1::bigint, {rows}) as g",
        "insert into accounts (id, balance) "
        "select account_id, sum(amount) from ledger_entries group by account_id",
        f"update accounts set balance = balance + 0.01 where id in ({drifted})",
        "create table bench_meta (rows bigint not null)",
        f"insert into bench_meta values ({rows})",
        "vacuum analyze",
    ]


def drop_ledgers() -> list[str]:
    """Drop every cached ledger database; the names dropped."""
    user = pg_user()
    with psycopg.connect(conninfo(user, "postgres"), autocommit=True) as conn:
        names = [row[0] for row in conn.execute(
            "select datname from pg_database where datname like %s", (LEDGER_PREFIX + "%",))]
        for name in names:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(name)))
    return names


def psql_command(user: str, dbname: str, statement: str) -> list[str]:
    """``psql -c`` running ``statement`` (no psqlrc, output discarded, errors fatal)."""
    psql = shutil.which("psql")
    if psql is None:
        raise RuntimeError("psql not found on PATH")
    return [psql, "-X", "-q", "-A", "-t", "-o", "/dev/null", "-v", "ON_ERROR_STOP=1",
            "-h", HOST, "-p", str(PORT), "-U", user, "-d", dbname, "-c", statement]


# ---------------------------------------------------------------- Prometheus
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def gauge_history(name: str, labels: str, values: list[float], step: float,
                  end: float) -> str:
    """OpenMetrics text of one gauge: ``values`` ``step`` seconds apart, the last at ``end``."""
    first = end - (len(values) - 1) * step
    lines = [f"# TYPE {name} gauge"]
    lines += [f"{name}{{{labels}}} {value!r} {first + i * step:.3f}"
              for i, value in enumerate(values)]
    return "\n".join([*lines, "# EOF"]) + "\n"


class Prometheus:
    """Debian's Prometheus over backfilled OpenMetrics text, on a free loopback port."""

    def __init__(self, home: Path):
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, openmetrics: str) -> Prometheus:
        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if prometheus is None or promtool is None:
            raise RuntimeError("prometheus/promtool not on PATH (Debian package `prometheus`; "
                               "scripts/ensure-services installs it)")
        data = self.home / "data"
        data.mkdir(parents=True)
        source = self.home / "series.om"
        source.write_text(openmetrics)
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source),
                        str(data)], check=True, capture_output=True, timeout=120)
        (self.home / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
        port = free_port()
        self.url = f"http://{HOST}:{port}"
        with open(self.home / "prometheus.log", "ab") as output:
            self.process = subprocess.Popen(
                [prometheus, f"--config.file={self.home / 'prometheus.yml'}",
                 f"--storage.tsdb.path={data}", f"--web.listen-address={HOST}:{port}",
                 "--log.level=warn", "--storage.tsdb.retention.time=3650d"],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                cwd=self.home)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.url}/-/ready", timeout=1) as answer:
                if answer.status == 200:
                    return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.05)
        log_text = (self.home / "prometheus.log").read_text(errors="replace")[-1500:]
        raise RuntimeError(f"Prometheus was not ready at {self.url}: {log_text}")

    def requests_total(self, handler: str) -> float:
        """Prometheus' own ``prometheus_http_requests_total`` for ``handler`` (all codes)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        prefix = "prometheus_http_requests_total{"
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(prefix) and f'handler="{handler}"' in line)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
