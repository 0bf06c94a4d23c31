"""A deadline shared by every step of one probe: connect, send, read, retry, poll.

Probes ask ``remaining()`` before each blocking call and pass it down as that call's timeout,
so a check cannot outlive its own budget even across retries and polling.
"""

from __future__ import annotations

import time

from opsgate.durations import format_duration
from opsgate.errors import ProbeTimeout


class Deadline:
    """``seconds`` from now (monotonic clock)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.monotonic()
        self.end = self.started + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(self.end - time.monotonic(), 0.0)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, doing: str) -> float:
        """The seconds left; raise ProbeTimeout naming ``doing`` when none are."""
        left = self.remaining()
        if left <= 0:
            raise ProbeTimeout(f"timed out after {format_duration(self.seconds)} while {doing}")
        return left
