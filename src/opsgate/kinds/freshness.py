"""``kind: freshness``: how old a timestamp is (D7, Q4, Q8, Q12).

    - id: Q4
      title: Worker heartbeat is fresh
      kind: freshness
      source: {sql: {query: "select max(beat_at) from worker_heartbeats"}}
      max_age: 60s
      label: heartbeat age

The source returns a timestamp: a datetime (a naive one is UTC), a date (its midnight UTC), an
ISO-8601 string, or epoch seconds or milliseconds (numbers or numeric strings, from JSON or
PromQL). The observed value is the age in seconds, judged ``<= max_age``:
``heartbeat age (312s) <= 60s``. A timestamp more than ``max_skew`` (default 10s) in the future,
or one that does not parse, is an error: the clocks disagree or the value is not a timestamp.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from opsgate.conditions import format_value
from opsgate.config.base import CheckBase, Pair, Reference
from opsgate.durations import Duration, format_duration
from opsgate.errors import NoData
from opsgate.evidence import iso
from opsgate.kinds.sources import Source, requests, require_declared_mutation
from opsgate.observation import Observation, Subject, utcnow
from opsgate.series import ReducedCondition

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.kinds.http import HttpRequest
    from opsgate.runner import Context

MILLISECONDS_FROM = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973
TOO_LARGE = 1e14


def parse_timestamp(value: Any) -> datetime:
    """``value`` as an aware UTC datetime; ValueError saying why it is not a timestamp."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, bool):
        raise ValueError(f"{value} is not a timestamp")
    if isinstance(value, int | float):
        return _epoch(float(value))
    if isinstance(value, str):
        return _text(value.strip())
    raise ValueError(f"{format_value(value)} is not a timestamp")


def _epoch(number: float) -> datetime:
    if not math.isfinite(number) or number < 0 or number >= TOO_LARGE:
        raise ValueError(f"{format_value(number)} is not epoch seconds or milliseconds")
    seconds = number / 1000 if number >= MILLISECONDS_FROM else number
    return datetime.fromtimestamp(seconds, UTC)


def _text(text: str) -> datetime:
    try:
        return _epoch(float(text))
    except ValueError:
        pass
    try:
        return parse_timestamp(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"{format_value(text)} is neither an ISO-8601 timestamp nor epoch "
                         "seconds or milliseconds") from None


def format_age(seconds: float) -> str:
    """``312s``, ``4.2s``, ``3h05m = 11100s``."""
    if seconds < 10:
        return f"{seconds:.3g}s"
    if seconds < 3600:
        return f"{seconds:.0f}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m = {seconds:.0f}s"


def format_limit(seconds: float) -> str:
    """``max_age`` in the unit of the age beside it: ``60s``, ``300s``, ``2h``."""
    if 1 <= seconds < 3600:
        return f"{seconds:g}s"
    return format_duration(seconds)


class FreshnessCheck(CheckBase):
    kind: Literal["freshness"]
    source: Source
    max_age: Duration
    max_skew: Duration = 10.0
    label: str | None = None

    @model_validator(mode="after")
    def _safe(self) -> FreshnessCheck:
        require_declared_mutation(self.mutating, [self.source])
        return self

    def references(self) -> list[Reference]:
        return self.source.references(("source",))

    def requests(self) -> list[HttpRequest]:
        return requests([self.source])

    def budget(self, targets: Targets) -> float:
        return self.timeout if self.timeout is not None else self.source.budget(targets)

    def measure(self, ctx: Context) -> Observation:
        started = utcnow()
        reading = self.source.measure(ctx, self.budget(ctx.targets))
        now = time.time()
        seen = {**reading.seen, "now": iso(datetime.fromtimestamp(now, UTC))}
        try:
            moment = parse_timestamp(reading.value)
        except ValueError as exc:
            raise NoData(f"the source's value is not a timestamp: {exc}", asked=reading.asked,
                         seen=seen) from None
        age = now - moment.timestamp()
        seen.update(timestamp=iso(moment), age_s=round(age, 3))
        if age < -self.max_skew:
            raise NoData(f"the timestamp {iso(moment)} is {format_age(-age)} in the future "
                         f"(more than the {format_duration(self.max_skew)} allowed skew): the "
                         "clocks disagree or the value is not the time of an event",
                         asked=reading.asked, seen=seen)
        age = max(age, 0.0)
        return Observation("freshness", reading.asked, seen, {"age": age},
                           [Subject(self.label or "age", age)], started_at=started,
                           finished_at=utcnow())

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        text = f"<= {format_limit(self.max_age)}"
        for subject in observation.subjects:
            condition = ReducedCondition(text, "<=", self.max_age,
                                         shown=format_age(subject.value))
            yield Pair(subject.label, subject.value, condition)


MODEL = FreshnessCheck
