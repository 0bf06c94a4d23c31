"""The probes, for checks written by hand in ``checks/`` (the ``opsgate`` fixture).

```python
def test_dashboard_lists_every_queue(opsgate):
    observation = opsgate.http("/api/ops/status")
    assert observation.fields["status"] == 200
    assert opsgate.sql("select count(*) from queues") == 4
```

Hand-written checks use the same targets, read-only sessions, SQL guard, deadlines and
per-target concurrency bounds as configured ones; their failures block the gate like any
other check.
"""

from __future__ import annotations

from typing import Any

from opsgate.config.loader import LoadedEnvironment
from opsgate.observation import Observation
from opsgate.runner import Context, ProbeRunner

DEFAULT_TIMEOUT = 10.0


class HandProbes:
    """Probes bound to one environment of the run."""

    def __init__(self, runner: ProbeRunner, env: LoadedEnvironment):
        self.env = env
        self._context = Context(runner, env)

    @property
    def name(self) -> str:
        return self.env.name

    def http(self, path: str, *, target: str | None = None, method: str = "GET",
             timeout: float = DEFAULT_TIMEOUT, **request: Any) -> Observation:
        """One request (``params``, ``headers``, ``json``, ``body``); GET/HEAD/OPTIONS only."""
        from opsgate.kinds.http import SAFE_METHODS, HttpRequest

        if method.upper() not in SAFE_METHODS:
            raise ValueError(f"hand-written checks send safe methods only, not {method}")
        built = HttpRequest.model_validate({"method": method, "path": path, **request})
        return self._context.http_request(target, built, timeout)

    def sql(self, query: str, *, database: str | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The single value of a read-only scalar query."""
        from opsgate.config.sqlguard import check_read_only

        check_read_only(query)
        return self._context.sql_scalar(database, query, timeout).fields["value"]

    def promql(self, query: str, *, timeout: float = DEFAULT_TIMEOUT) -> Observation:
        """An instant query; ``observation.subjects`` holds one value per series."""
        from opsgate.config.promqlcheck import check_promql

        check_promql(query)
        return self._context.promql(query, timeout)
