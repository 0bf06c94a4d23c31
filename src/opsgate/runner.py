"""Run the probe of a configured check against its environment's targets.

Clients and engines are made once per target and shared by every check of the run. Each
target has a concurrency bound (``concurrency`` for HTTP and Prometheus, ``max_connections``
for databases); a probe holds one slot of its target while it talks to it, and its deadline
starts when it gets the slot. A check kind measures through its ``Context``; probe modules are
imported only when a check of their kind runs, so start-up stays light.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opsgate.config.base import CheckBase
from opsgate.config.loader import LoadedEnvironment
from opsgate.config.targets import Targets
from opsgate.deadline import Deadline
from opsgate.observation import Observation

Started = Callable[[Deadline], None]


@dataclass(frozen=True)
class CheckCase:
    """One configured check in one environment: the unit a test item runs."""

    env: LoadedEnvironment
    check: CheckBase
    advisory: bool = False

    @property
    def ident(self) -> str:
        return f"{self.env.name}:{self.check.id}"


class Context:
    """What a check kind measures with: its environment's targets, through the run's runner.

    The first deadline a check takes (or the one it declares with ``begin``) is reported to
    the scheduler, which enforces it even when the probe is stuck in a blocking call.
    """

    def __init__(self, runner: ProbeRunner, env: LoadedEnvironment,
                 started: Started | None = None,
                 on_progress: Callable[[str], None] | None = None):
        self.runner, self.env, self._started = runner, env, started
        self._overall: Deadline | None = None
        self._on_progress = on_progress

    def pause(self, seconds: float) -> None:
        """Wait between samples or polls; ends at once (ProbeTimeout) when the run stops."""
        from opsgate.errors import ProbeTimeout

        if seconds > 0 and self.runner.stopping.wait(seconds):
            raise ProbeTimeout("the run stopped while this check was waiting")

    def progress(self, status: str) -> None:
        """What a long probe is doing now (``sample 3/15, 12m left``), shown while it waits."""
        if self._on_progress is not None:
            self._on_progress(status)

    @property
    def targets(self) -> Targets:
        return self.env.environment.targets

    def begin(self, seconds: float) -> Deadline:
        """Declare the check's whole budget (windows, flows) before its first probe."""
        self._overall = Deadline(seconds)
        self._report(self._overall)
        return self._overall

    def deadline(self, seconds: float) -> Deadline:
        """A deadline for one probe, within the overall one when there is one."""
        if self._overall is not None:
            return Deadline(min(seconds, self._overall.remaining()))
        deadline = Deadline(seconds)
        self._report(deadline)
        return deadline

    def _report(self, deadline: Deadline) -> None:
        if self._started is not None:
            self._started(deadline)
            self._started = None

    # ------------------------------------------------------------ probes
    def http_request(self, target: str | None, request: Any, seconds: float,
                     values: dict[str, Any] | None = None) -> Observation:
        """Send a configured ``HttpRequest`` to HTTP target ``target`` (default: the only one)."""
        from opsgate.probes.http import build_request, probe_http

        name = self.targets.http_name(target)
        config = self.targets.http[name]
        client = self.runner.http_client(self.env, name)
        built = build_request(client, config.base_url, request, config.headers, values)
        with self.runner.slot(self.env, f"http:{name}", config.concurrency):
            return probe_http(client, built, self.deadline(seconds), retries=config.retries)

    def sql_scalar(self, database: str | None, sql: str, seconds: float, *,
                   label: str = "value") -> Observation:
        from opsgate.probes.sql import probe_scalar

        with self._database(database) as engine:
            return probe_scalar(engine, sql, self.deadline(seconds), label=label)

    def sql_violations(self, database: str | None, sql: str, sample: int,
                       seconds: float) -> Observation:
        from opsgate.probes.sql import probe_violations

        with self._database(database) as engine:
            return probe_violations(engine, sql, sample, self.deadline(seconds))

    def promql(self, query: str, seconds: float, *, window: tuple[float, float] | None = None,
               at: float | None = None, full_range: bool = True) -> Observation:
        """An instant query (at ``at``, default now) or a range over ``(last, step)``.

        A range must be covered by data (``full_range``) unless the caller judges coverage
        itself (a window counts its own samples).
        """
        from opsgate.probes.promql import probe_promql, range_window

        config = self.targets.prometheus
        if config is None:
            raise ValueError("no Prometheus target")  # validation makes this unreachable
        client = self.runner.http_client(self.env, "prometheus")
        span = range_window(*window, now=at) if window else None
        with self.runner.slot(self.env, "prometheus", config.concurrency):
            return probe_promql(client, config.url, config.headers, query,
                                self.deadline(seconds), window=span, at=at,
                                full_range=full_range)

    def database_name(self, database: str | None) -> str:
        return self.targets.database_name(database)

    @contextmanager
    def _database(self, database: str | None) -> Iterator[Any]:
        name = self.database_name(database)
        config = self.targets.databases[name]
        with self.runner.slot(self.env, f"db:{name}", config.max_connections):
            yield self.runner.engine(self.env, name)


class ProbeRunner:
    """Owns the run's HTTP clients, database engines and per-target slots."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._clients: dict[tuple[str, str], Any] = {}
        self._engines: dict[tuple[str, str], Any] = {}
        self._slots: dict[tuple[str, str], threading.BoundedSemaphore] = {}
        self._several: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def observe(self, case: CheckCase, started: Started | None = None,
                on_progress: Callable[[str], None] | None = None) -> Observation:
        """Measure ``case``; raise ProbeError when it cannot."""
        return case.check.measure(Context(self, case.env, started, on_progress))

    @contextmanager
    def slot(self, env: LoadedEnvironment, target: str, size: int) -> Iterator[None]:
        """Hold one of the ``size`` slots of ``target`` while talking to it."""
        with self._semaphore(env, target, size):
            yield

    @contextmanager
    def slots(self, env: LoadedEnvironment, target: str, size: int, count: int) -> Iterator[None]:
        """Hold ``count`` slots at once (requests sent together). Takers of several slots
        queue one at a time, so two of them can never each hold part of what they need."""
        count = min(count, size)
        semaphore = self._semaphore(env, target, size)
        with self._lock:
            several = self._several.setdefault((env.name, target), threading.Lock())
        with several:
            for _ in range(count):
                semaphore.acquire()
        try:
            yield
        finally:
            for _ in range(count):
                semaphore.release()

    def _semaphore(self, env: LoadedEnvironment, target: str,
                   size: int) -> threading.BoundedSemaphore:
        with self._lock:
            return self._slots.setdefault((env.name, target), threading.BoundedSemaphore(size))

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
        """Stop waiting probes, close every client and dispose every engine."""
        self.stopping.set()
        for client in self._clients.values():
            client.close()
        for engine in self._engines.values():
            engine.dispose()
        self._clients.clear()
        self._engines.clear()
