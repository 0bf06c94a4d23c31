"""``kind: window``: a value sampled over a span of time, judged as a series (Q2, Q3, M6).

    - id: Q2
      title: DLQ stabilizes (does not grow for 15 minutes)
      kind: window
      sample: {http: {target: api, request: {path: /internal/outbox/dlq}, value: count}}
      window: 15m
      interval: 1m
      expect: non_increasing          # or a list: [non_increasing, "last <= 5"]
      label: DLQ count

An HTTP or SQL source is sampled every ``interval`` over ``window``: the first sample at the
start, the last at the end (16 samples for 15m / 1m). The check declares its whole budget
(``window`` plus one sample's timeout) before the first sample so the scheduler enforces it.
A sample that fails (timeout, refused, missing field, not a number) is a missing sample, listed
in the evidence; fewer than ``min_samples`` samples (default 80% of window / interval, at least
2) make the check an error. A PromQL source is read in one range query over the last ``window``
at ``interval`` step instead, so the check finishes at once. ``timeout`` is one sample's timeout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from opsgate.conditions import Unmeasurable, format_value
from opsgate.config.base import CheckBase, Pair, Reference
from opsgate.durations import Duration, format_duration
from opsgate.errors import NoData, ProbeError
from opsgate.evidence import iso
from opsgate.kinds.sources import Source, requests, require_declared_mutation
from opsgate.observation import Observation, Subject, utcnow
from opsgate.series import SeriesCondition, SeriesConditionText, as_number

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.kinds.http import HttpRequest
    from opsgate.runner import Context

MAX_SAMPLES = 1000
MIN_INTERVAL = 0.1
MIN_SHARE = 0.8


class WindowCheck(CheckBase):
    kind: Literal["window"]
    sample: Source
    window: Duration
    interval: Duration
    expect: Annotated[list[SeriesConditionText], Field(min_length=1)]
    label: str | None = None
    min_samples: Annotated[int, Field(ge=2)] | None = None

    @field_validator("expect", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | SeriesCondition) else value

    @model_validator(mode="after")
    def _sensible_window(self) -> WindowCheck:
        if self.interval < MIN_INTERVAL:
            raise ValueError(f"interval must be at least {format_duration(MIN_INTERVAL)}")
        if self.window < self.interval:
            raise ValueError(f"the window ({format_duration(self.window)}) must be at least one "
                             f"interval ({format_duration(self.interval)})")
        if self.planned() > MAX_SAMPLES:
            raise ValueError(f"{self.planned()} samples over the window is more than "
                             f"{MAX_SAMPLES}; raise the interval")
        if self.min_samples is not None and self.min_samples > self.planned():
            raise ValueError(f"min_samples ({self.min_samples}) is more than the "
                             f"{self.planned()} samples the window takes")
        require_declared_mutation(self.mutating, [self.sample])
        return self

    # ------------------------------------------------------------ plan
    def offsets(self) -> list[float]:
        """Seconds after the start of each sample: every interval, and the end of the window."""
        return [index * self.interval for index in range(self.planned() - 1)] + [self.window]

    def planned(self) -> int:
        """How many samples the window takes (or points a range query returns)."""
        return math.ceil(self.window / self.interval - 1e-9) + 1

    def needed(self) -> int:
        """The fewest samples that make a judgement."""
        if self.min_samples is not None:
            return self.min_samples
        return max(2, math.ceil(MIN_SHARE * self.window / self.interval - 1e-9))

    def sample_timeout(self, targets: Targets) -> float:
        return self.timeout if self.timeout is not None else self.sample.budget(targets)

    # ------------------------------------------------------------ CheckBase
    def references(self) -> list[Reference]:
        return self.sample.references(("sample",))

    def requests(self) -> list[HttpRequest]:
        return requests([self.sample])

    def budget(self, targets: Targets) -> float:
        if self.sample.promql is not None:
            return self.sample_timeout(targets)
        return self.window + self.sample_timeout(targets)

    def measure(self, ctx: Context) -> Observation:
        if self.sample.promql is not None:
            return self._measure_range(ctx)
        return self._measure_samples(ctx)

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        for subject in observation.subjects:
            for condition in self.expect:
                yield condition.pair(subject.label, subject.points or [])

    # ------------------------------------------------------------ measuring
    def _plan(self, mode: str) -> dict[str, Any]:
        return {"mode": mode, "window": format_duration(self.window),
                "interval": format_duration(self.interval), "planned": self.planned(),
                "min_samples": self.needed(), "expect": [c.text for c in self.expect]}

    def _measure_range(self, ctx: Context) -> Observation:
        started = utcnow()
        reading = self.sample.measure_range(ctx, self.window, self.interval,
                                            self.sample_timeout(ctx.targets))
        points = reading.value
        asked = {**self._plan("range query"), "source": reading.asked}
        seen = {"samples": [[ts, value] for ts, value in points], "taken": len(points)}
        if len(points) < self.needed():
            raise NoData(f"the range query returned {len(points)} points over "
                         f"{format_duration(self.window)}; at least {self.needed()} are needed "
                         "(gaps in the data)", asked=asked, seen=seen)
        return self._observation(asked, seen, points, started)

    def _measure_samples(self, ctx: Context) -> Observation:
        started = utcnow()
        per_sample = self.sample_timeout(ctx.targets)
        ctx.begin(self.window + per_sample)
        sampling = Sampling(self, ctx, per_sample)
        sampling.run()
        asked = {**self._plan("sampled"), "source": sampling.asked}
        seen = sampling.seen()
        if len(sampling.points) < self.needed():
            raise NoData(f"only {len(sampling.points)} of {self.planned()} samples were taken "
                         f"({len(sampling.errors)} failed); at least {self.needed()} are "
                         f"needed: {sampling.first_error()}", asked=asked, seen=seen)
        return self._observation(asked, seen, sampling.points, started)

    def _observation(self, asked: dict[str, Any], seen: dict[str, Any],
                     points: list[tuple[float, Any]], started: datetime) -> Observation:
        label = self.label or self.sample.default_label()
        last = points[-1][1] if points else None
        return Observation("window", asked, seen, {"samples": len(points)},
                           [Subject(label, last, list(points))], started_at=started,
                           finished_at=utcnow())


class Sampling:
    """One window of samples in progress: the schedule, the points and the failures."""

    def __init__(self, check: WindowCheck, ctx: Context, per_sample: float):
        self.check, self.ctx, self.per_sample = check, ctx, per_sample
        self.points: list[tuple[float, float]] = []
        self.errors: list[dict[str, Any]] = []
        self.asked: dict[str, Any] = {}
        self.last_seen: dict[str, Any] = {}
        self.start = time.monotonic()

    def run(self) -> None:
        """Take every planned sample on schedule; a slot already passed is missed."""
        offsets = self.check.offsets()
        for index, offset in enumerate(offsets):
            late = self._wait(self.start + offset)
            final = index == len(offsets) - 1
            if late > self.check.interval and not final:
                self._fail(index, time.time(), f"missed: the previous sample ran "
                           f"{late:.3g}s past this one's slot", "missed")
            else:
                self._take(index)
            self.ctx.progress(self._status(index + 1, len(offsets)))

    def _wait(self, moment: float) -> float:
        """Sleep until ``moment`` (monotonic); the seconds it is already past."""
        pause = moment - time.monotonic()
        self.ctx.pause(pause)
        return max(-pause, 0.0)

    def _take(self, index: int) -> None:
        timestamp = time.time()
        try:
            reading = self.check.sample.measure(self.ctx, self.per_sample)
            value = as_number(reading.value)
        except ProbeError as exc:
            self.asked = self.asked or exc.asked
            self._fail(index, timestamp, str(exc), exc.reason)
            return
        except Unmeasurable as exc:
            self.asked = self.asked or reading.asked
            self._fail(index, timestamp, str(exc), "not_a_number")
            return
        self.asked = self.asked or reading.asked
        self.last_seen = reading.seen
        self.points.append((round(timestamp, 3), value))

    def _fail(self, index: int, timestamp: float, message: str, reason: str) -> None:
        self.errors.append({"sample": index + 1, "at": iso(_utc(timestamp)),
                            "error": message, "reason": reason})

    def _status(self, done: int, total: int) -> str:
        left = max(self.start + self.check.window - time.monotonic(), 0.0)
        last = format_value(self.points[-1][1]) if self._last_ok(done) else "error"
        return f"sample {done}/{total}, {clock(left)} left, last {last}"

    def _last_ok(self, done: int) -> bool:
        return not self.errors or self.errors[-1]["sample"] != done

    def first_error(self) -> str:
        return self.errors[0]["error"] if self.errors else "no sample failed"

    def seen(self) -> dict[str, Any]:
        seen: dict[str, Any] = {"samples": [[ts, value] for ts, value in self.points],
                                "taken": len(self.points), "failed": len(self.errors)}
        if self.errors:
            seen["errors"] = self.errors
        if self.last_seen:
            seen["last_answer"] = self.last_seen
        return seen


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def clock(seconds: float) -> str:
    """``11m20s``, ``3.5s``: a countdown for progress lines."""
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


MODEL = WindowCheck
