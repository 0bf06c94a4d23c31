"""What a probe returns: what it asked, what it saw, and the values a condition reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
"""A value that is not there at all (no JSON body), as opposed to a JSON ``null``."""


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@dataclass
class Subject:
    """One measured value a condition is applied to, with a readable label.

    A scalar probe yields one subject; a PromQL vector yields one per series, a range
    query one per series with every point in ``points``.
    """

    label: str
    value: Any
    points: list[tuple[float, Any]] | None = None


@dataclass
class Observation:
    """The result of one probe.

    ``asked`` is the request (method and URL, SQL text, PromQL and range), ``seen`` the
    answer as evidence (status, latency, body excerpt, rows, series). ``fields`` maps a
    name to a measured value for conditions (``status``, ``latency_ms``, ``value``, ...).
    """

    kind: str
    asked: dict[str, Any]
    seen: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    subjects: list[Subject] = field(default_factory=list)
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime = field(default_factory=utcnow)
