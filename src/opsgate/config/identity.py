"""What an environment must be talking to, checked before any check runs (``identity:``).

```yaml
identity:
  databases:
    main: {database: app_staging}            # current_database() of that target
  http:
    api: {request: {path: /version}, expect: {json: {environment: "== staging"}}}
  prometheus:
    external_labels: {env: staging}          # Prometheus' global external labels
```

Staging credentials pointed at production (or the reverse) stop the run with one message per
mismatch, before anything is measured.
"""

from __future__ import annotations

from opsgate.config.base import Strict
from opsgate.kinds.http import HttpExpect, HttpRequest


class DatabaseIdentity(Strict):
    database: str | None = None
    user: str | None = None


class HttpIdentity(Strict):
    request: HttpRequest
    expect: HttpExpect


class PrometheusIdentity(Strict):
    external_labels: dict[str, str]


class Identity(Strict):
    databases: dict[str, DatabaseIdentity] = {}
    http: dict[str, HttpIdentity] = {}
    prometheus: PrometheusIdentity | None = None
