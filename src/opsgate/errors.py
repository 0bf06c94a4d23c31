"""The exceptions opsgate raises.

    OpsgateError
    ├── ConfigError          the environment file is wrong; nothing runs (pytest usage error)
    └── ProbeError           a probe could not measure; the check ends as ``error``
        ├── ProbeTimeout     a deadline passed (connect, read, statement, lock)
        ├── ProbeConnectionError  refused, DNS, TLS, reset
        ├── ProbeQueryError  the server rejected the query (SQL error, PromQL error, HTTP 5xx)
        └── NoData           the answer was empty, NaN, partial or missing a field
"""

from __future__ import annotations

from typing import Any


class OpsgateError(Exception):
    """Base class of every opsgate error."""


class ConfigError(OpsgateError):
    """One or more problems in an environment file, each a full sentence."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class ProbeError(OpsgateError):
    """A probe could not measure. ``asked`` and ``seen`` are kept for the evidence."""

    reason = "error"

    def __init__(self, message: str, *, asked: dict[str, Any] | None = None,
                 seen: dict[str, Any] | None = None):
        super().__init__(message)
        self.asked = asked or {}
        self.seen = seen or {}


class ProbeTimeout(ProbeError):
    reason = "timeout"


class ProbeConnectionError(ProbeError):
    reason = "connection"


class ProbeQueryError(ProbeError):
    reason = "query"


class NoData(ProbeError):
    reason = "no_data"
