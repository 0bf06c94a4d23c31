"""Run the probe of a configured check against its environment's targets.

Clients and engines are made once per target and shared by every check of the run; probe
modules are imported only when a check of their kind runs, so start-up stays light.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opsgate.config.loader import LoadedEnvironment
from opsgate.config.schema import Check, HttpCheck, PromqlCheck, SqlCheck
from opsgate.errors import ProbeError
from opsgate.observation import Observation


@dataclass(frozen=True)
class CheckCase:
    """One configured check in one environment: the unit a test item runs."""

    env: LoadedEnvironment
    check: Check

    @property
    def ident(self) -> str:
        return f"{self.env.name}:{self.check.id}"


class ProbeRunner:
    """Owns the run's HTTP clients and database engines and runs probes with them."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self._clients: dict[tuple[str, str], Any] = {}
        self._engines: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def observe(self, case: CheckCase) -> Observation:
        """Run the probe of ``case``; raise ProbeError when it cannot measure."""
        check, targets = case.check, case.env.environment.targets
        if isinstance(check, HttpCheck):
            from opsgate.probes.http import probe_http

            name = check.target or next(iter(targets.http))
            target = targets.http[name]
            return probe_http(check.request, target, self._client(case, name, target.verify_tls))
        if isinstance(check, SqlCheck):
            from opsgate.probes.sql import probe_sql

            name = check.database or next(iter(targets.databases))
            return probe_sql(check, self._engine(case, name))
        if isinstance(check, PromqlCheck):
            from opsgate.probes.promql import probe_promql

            assert targets.prometheus is not None  # guaranteed by validation
            return probe_promql(check, targets.prometheus, self._client(case, "prometheus"))
        raise ProbeError(f"no probe for checks of kind {check.kind!r}")

    def _client(self, case: CheckCase, name: str, verify: bool = True) -> Any:
        key = (case.env.name, name)
        with self._lock:
            if key not in self._clients:
                from opsgate.probes.http import make_http_client

                self._clients[key] = make_http_client(verify=verify)
            return self._clients[key]

    def _engine(self, case: CheckCase, name: str) -> Any:
        key = (case.env.name, name)
        with self._lock:
            if key not in self._engines:
                from opsgate.probes.database import make_engine

                target = case.env.environment.targets.databases[name]
                self._engines[key] = make_engine(target, self.run_id)
            return self._engines[key]

    def close(self) -> None:
        """Close every client and dispose every engine."""
        for client in self._clients.values():
            client.close()
        for engine in self._engines.values():
            engine.dispose()
        self._clients.clear()
        self._engines.clear()
