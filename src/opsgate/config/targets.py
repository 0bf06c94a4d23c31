"""Targets of an environment: HTTP services, databases, a Prometheus."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from opsgate.config.base import Strict
from opsgate.durations import Duration

_URL = re.compile(r"^(?P<backend>\w+)(?:\+(?P<driver>\w+))?://", re.ASCII)


class HttpTarget(Strict):
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = {}
    timeout: Duration = 10.0
    verify_tls: bool = True
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    retries: Annotated[int, Field(ge=0, le=2)] = 2


class DatabaseTarget(Strict):
    url: str
    connect_timeout: Duration = 5.0
    statement_timeout: Duration = 5.0
    lock_timeout: Duration = 1.0
    idle_in_transaction_timeout: Duration = 10.0
    max_connections: Annotated[int, Field(ge=1, le=2)] = 2
    accept_write_role: bool = False

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, url: str) -> str:
        """Checked by shape here (importing SQLAlchemy costs start-up); parsed when used."""
        match = _URL.match(url)
        if match is None:
            raise ValueError("is not a SQLAlchemy URL such as postgresql+psycopg://host/db")
        if match["backend"] not in ("postgresql", "sqlite"):
            raise ValueError("only postgresql and sqlite databases are supported")
        return url

    def budget(self, queries: int = 1) -> float:
        """Seconds a check sending ``queries`` statements may take: connect, then each query."""
        return self.connect_timeout + queries * self.statement_timeout

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgres")


class PrometheusTarget(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = {}
    timeout: Duration = 10.0
    concurrency: Annotated[int, Field(ge=1, le=16)] = 4


class Targets(Strict):
    http: dict[str, HttpTarget] = {}
    databases: dict[str, DatabaseTarget] = {}
    prometheus: PrometheusTarget | None = None

    def http_name(self, name: str | None = None) -> str:
        """The HTTP target a check means: the one it names, else the only one declared."""
        return _chosen(name, self.http, "http")

    def http_target(self, name: str | None = None) -> HttpTarget:
        return self.http[self.http_name(name)]

    def database_name(self, name: str | None = None) -> str:
        """The database a check means: the one it names, else the only one declared."""
        return _chosen(name, self.databases, "databases")

    def database(self, name: str | None = None) -> DatabaseTarget:
        return self.databases[self.database_name(name)]

    def declared_database(self, name: str | None = None) -> DatabaseTarget | None:
        """Like ``database``, but None when it is not declared (the loader reports that)."""
        return self.databases.get(self.database_name(name)) if self.databases else None


def _chosen(name: str | None, declared: dict[str, object], section: str) -> str:
    if name:
        return name
    if not declared:
        raise LookupError(f"no target is declared under targets.{section}")
    return next(iter(declared))
