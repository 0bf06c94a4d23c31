"""Run the probe of a configured check against its environment's targets.

Clients and engines are made once per target and shared by every check of the run. Each
target has a concurrency bound (``concurrency`` for HTTP and Prometheus, ``max_connections``
for databases); a probe holds one slot of its target while it talks to it, and its deadline
starts when it gets the slot. Probe modules are imported only when a check of their kind runs,
so start-up stays light.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opsgate.config.loader import LoadedEnvironment
from opsgate.config.schema import Check, HttpCheck, PromqlCheck, SqlCheck
from opsgate.deadline import Deadline
from opsgate.errors import ProbeError
from opsgate.observation import Observation

Started = Callable[[Deadline], None]


@dataclass(frozen=True)
class CheckCase:
    """One configured check in one environment: the unit a test item runs."""

    env: LoadedEnvironment
    check: Check

    @property
    def ident(self) -> str:
        return f"{self.env.name}:{self.check.id}"


def check_timeout(case: CheckCase) -> float:
    """The check's own ``timeout``, else its target's."""
    check, targets = case.check, case.env.environment.targets
    if check.timeout is not None:
        return check.timeout
    if isinstance(check, HttpCheck):
        target = targets.http[http_target_name(case)]
        return check.request.timeout or target.timeout
    if isinstance(check, SqlCheck):
        database = targets.databases[database_name(case)]
        return database.connect_timeout + database.statement_timeout
    if isinstance(check, PromqlCheck) and targets.prometheus is not None:
        return targets.prometheus.timeout
    return 10.0


def http_target_name(case: CheckCase) -> str:
    return getattr(case.check, "target", None) or next(iter(case.env.environment.targets.http))


def database_name(case: CheckCase) -> str:
    return (getattr(case.check, "database", None)
            or next(iter(case.env.environment.targets.databases)))


class ProbeRunner:
    """Owns the run's HTTP clients, database engines and per-target slots; runs probes."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._clients: dict[tuple[str, str], Any] = {}
        self._engines: dict[tuple[str, str], Any] = {}
        self._slots: dict[tuple[str, str], threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def observe(self, case: CheckCase, started: Started | None = None) -> Observation:
        """Run the probe of ``case``; raise ProbeError when it cannot measure."""
        check = case.check
        timeout = check_timeout(case)
        if isinstance(check, HttpCheck):
            return self._http(case, timeout, started)
        if isinstance(check, SqlCheck):
            return self._sql(case, timeout, started)
        if isinstance(check, PromqlCheck):
            return self._promql(case, timeout, started)
        raise ProbeError(f"no probe for checks of kind {check.kind!r}")

    # ------------------------------------------------------------ kinds
    def _http(self, case: CheckCase, timeout: float, started: Started | None) -> Observation:
        from opsgate.probes.http import build_request, probe_http

        name = http_target_name(case)
        target = case.env.environment.targets.http[name]
        client = self.http_client(case.env, name)
        request = build_request(client, target.base_url, case.check.request, target.headers)
        with self.slot(case.env, f"http:{name}", target.concurrency), \
                self._deadline(timeout, started) as deadline:
            return probe_http(client, request, deadline, retries=target.retries)

    def _sql(self, case: CheckCase, timeout: float, started: Started | None) -> Observation:
        from opsgate.probes.sql import probe_scalar, probe_violations

        name = database_name(case)
        target = case.env.environment.targets.databases[name]
        engine = self.engine(case.env, name)
        check = case.check
        with self.slot(case.env, f"db:{name}", target.max_connections), \
                self._deadline(timeout, started) as deadline:
            if check.violations:
                return probe_violations(engine, check.violations, check.sample, deadline)
            return probe_scalar(engine, check.scalar, deadline, label=check.label or "value")

    def _promql(self, case: CheckCase, timeout: float, started: Started | None) -> Observation:
        from opsgate.probes.promql import probe_promql, range_window

        target = case.env.environment.targets.prometheus
        assert target is not None  # guaranteed by validation
        check = case.check
        client = self.http_client(case.env, "prometheus")
        window = range_window(check.range.last, check.range.step) if check.range else None
        with self.slot(case.env, "prometheus", target.concurrency), \
                self._deadline(timeout, started) as deadline:
            return probe_promql(client, target.url, target.headers, check.query, deadline,
                                window=window)

    # ------------------------------------------------------------ shared resources
    @contextmanager
    def slot(self, env: LoadedEnvironment, target: str, size: int) -> Iterator[None]:
        """Hold one of the ``size`` slots of ``target`` while talking to it."""
        key = (env.name, target)
        with self._lock:
            semaphore = self._slots.setdefault(key, threading.BoundedSemaphore(size))
        with semaphore:
            yield

    @staticmethod
    @contextmanager
    def _deadline(timeout: float, started: Started | None) -> Iterator[Deadline]:
        deadline = Deadline(timeout)
        if started is not None:
            started(deadline)
        yield deadline

    def http_client(self, env: LoadedEnvironment, name: str) -> Any:
        """The run's client for HTTP target ``name`` (or ``prometheus``) of ``env``."""
        key = (env.name, name)
        with self._lock:
            if key not in self._clients:
                from opsgate.probes.http import make_http_client

                target = env.environment.targets.http.get(name)
                self._clients[key] = make_http_client(
                    verify=target.verify_tls if target is not None else True)
            return self._clients[key]

    def engine(self, env: LoadedEnvironment, name: str) -> Any:
        """The run's engine for database ``name`` of ``env``."""
        key = (env.name, name)
        with self._lock:
            if key not in self._engines:
                from opsgate.probes.database import make_engine

                self._engines[key] = make_engine(env.environment.targets.databases[name],
                                                 self.run_id)
            return self._engines[key]

    def close(self) -> None:
        """Close every client and dispose every engine."""
        for client in self._clients.values():
            client.close()
        for engine in self._engines.values():
            engine.dispose()
        self._clients.clear()
        self._engines.clear()
