"""What the demo's routes and workers share: databases, faults, secret, metrics, settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from opsgate.demo.metrics import DemoMetrics

SECRET_HEADER = "X-Ops-Secret"
SECRET_VARIABLE = "DEMO_OPS_SECRET"
SMOKE_USER = "smoke"
CANARY_ALLOWLIST = frozenset({"condo-pilot-01", "condo-pilot-02"})
ROLLUP_INTERVAL_S = 30
HEARTBEAT_FRESH_S = 30


@dataclass
class DemoContext:
    """One running demo: its engines, faults and metrics."""

    engine: Engine
    health_engine: Engine
    faults: frozenset[str]
    secret: str
    metrics: DemoMetrics
    started_at: datetime
    backend: str
    stopping: threading.Event = field(default_factory=threading.Event)

    def has(self, fault: str) -> bool:
        """Whether ``fault`` is injected."""
        return fault in self.faults
