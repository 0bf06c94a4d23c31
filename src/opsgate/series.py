"""Series conditions: judgements over a window of ``(timestamp, value)`` points.

Written the way runbooks say them::

    non_increasing      no point is above the one before it (a DLQ that stabilizes)
    non_decreasing      no point is below the one before it
    all < 0.3           every point holds the condition (any comparison, between, in)
    max < X             the largest point           min > X     the smallest point
    mean < X            the average of the points   last <= X   the latest point
    delta <= X          last - first
    increase == 0       the sum of the rises between points (a counter that must not count)

``SeriesCondition.parse("delta <= 0").check(points)`` judges a list of points directly.
``pair(label, points)`` turns the same judgement into a ``Pair`` that ``opsgate.evaluate``
judges with a plain condition on the reduced value (``ReducedCondition``), so a series needs
nothing of its own there. NaN, None, a word where a number belongs, or fewer than
``MIN_POINTS`` points make a series unmeasurable: the check is an error, never a pass.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from pydantic import BeforeValidator, PlainSerializer

from opsgate.conditions import Condition, Unmeasurable, format_value, numeric, words_of

if TYPE_CHECKING:
    from opsgate.config.base import Pair

Point = tuple[float, Any]
MIN_POINTS = 2
MONOTONIC = {"non_increasing": ("<=", "up"), "non_decreasing": (">=", "down")}
REDUCERS = ("all", "max", "min", "mean", "last", "delta", "increase")
_ORDERING = frozenset({"<", "<=", ">", ">=", "==", "!=", "between"})
_HELP = ("write 'non_increasing', 'non_decreasing', 'all < X', 'max < X', 'min > X', "
         "'mean < X', 'last <= X', 'delta <= X' (last - first) or 'increase == 0' "
         "(sum of rises); every comparison operator and 'between A and B' work")


@dataclass(frozen=True)
class ReducedCondition(Condition):
    """A plain condition on a value reduced from observations, described with its origin.

    ``check`` judges the reduced value like any condition (or raises ``Unmeasurable`` with
    ``unmeasurable`` when the observations could not be reduced); ``describe`` shows ``shown``
    in the parentheses (``3 -> 7, up at 12:03:00Z``) and ``said`` as the condition.
    """

    shown: str = ""
    said: str = ""
    unmeasurable: str | None = None

    def check(self, value: Any) -> bool:
        if self.unmeasurable is not None:
            raise Unmeasurable(self.unmeasurable)
        return super().check(value)

    def describe(self, label: str, value: Any) -> str:
        return f"{label} ({self.shown or format_value(value)}) {self.said or self.text}"


class Reduction(NamedTuple):
    """A series reduced to one number, and how to show where it came from."""

    value: float
    shown: str


class SeriesResult(NamedTuple):
    """The judgement of a series: whether it holds, the reduced value, the sentence."""

    ok: bool
    observed: float
    text: str


def at(timestamp: float) -> str:
    """``12:03:00Z`` for an epoch timestamp."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%SZ")


def as_number(value: Any, timestamp: float | None = None) -> float:
    """``value`` as a finite float (numbers, numeric strings); Unmeasurable otherwise."""
    where = f" at {at(timestamp)}" if timestamp is not None else ""
    if value is None:
        raise Unmeasurable(f"no value{where}")
    number = numeric(value)
    if number is None:
        raise Unmeasurable(f"the value{where} is {format_value(value)}, not a number")
    if not math.isfinite(number):
        raise Unmeasurable(f"the value{where} is {value} (not a finite number)")
    return number


def numeric_points(points: Sequence[Point]) -> list[tuple[float, float]]:
    """The points with numeric values, in order; Unmeasurable for a gap or too few points."""
    if len(points) < MIN_POINTS:
        raise Unmeasurable(f"{len(points)} point(s): a series needs at least {MIN_POINTS}")
    return [(float(ts), as_number(value, float(ts))) for ts, value in points]


# ---------------------------------------------------------------- reductions
def _extreme(points: list[tuple[float, float]], pick: Callable[..., Any]) -> Reduction:
    timestamp, value = pick(points, key=lambda point: point[1])
    return Reduction(value, f"{format_value(value)} at {at(timestamp)}")


def _mean(points: list[tuple[float, float]]) -> Reduction:
    value = math.fsum(v for _, v in points) / len(points)
    return Reduction(value, f"{format_value(value)} over {len(points)} points")


def _last(points: list[tuple[float, float]]) -> Reduction:
    timestamp, value = points[-1]
    return Reduction(value, f"{format_value(value)} at {at(timestamp)}")


def _delta(points: list[tuple[float, float]]) -> Reduction:
    first, last = points[0][1], points[-1][1]
    value = last - first
    return Reduction(value, f"{format_value(first)} -> {format_value(last)}: "
                            f"{_signed(value)}")


def _steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``(timestamp of the later point, change)`` between consecutive points."""
    return [(later[0], later[1] - earlier[1]) for earlier, later in itertools.pairwise(points)]


def _increase(points: list[tuple[float, float]]) -> Reduction:
    rises = [(ts, step) for ts, step in _steps(points) if step > 0]
    value = math.fsum(step for _, step in rises)
    shown = f"{_signed(value)} over {len(points)} points"
    if rises:
        shown += f", first rise at {at(rises[0][0])}"
    return Reduction(value, shown)


def _monotonic(points: list[tuple[float, float]], direction: str) -> Reduction:
    """The largest rise (``up``) or fall (``down``, negative) between two points."""
    steps = _steps(points)
    if direction == "up":
        worst = max(step for _, step in steps)
        breaks = [ts for ts, step in steps if step > 0]
    else:
        worst = min(step for _, step in steps)
        breaks = [ts for ts, step in steps if step < 0]
    span = f"{format_value(points[0][1])} -> {format_value(points[-1][1])}"
    if breaks:
        more = f", {len(breaks)} times" if len(breaks) > 1 else ""
        return Reduction(worst, f"{span}, {direction} at {at(breaks[0])}{more}")
    return Reduction(worst, f"{span}, never {direction} in {len(points)} points")


_REDUCE: dict[str, Callable[[list[tuple[float, float]]], Reduction]] = {
    "max": lambda points: _extreme(points, max),
    "min": lambda points: _extreme(points, min),
    "mean": _mean,
    "last": _last,
    "delta": _delta,
    "increase": _increase,
    "non_increasing": lambda points: _monotonic(points, "up"),
    "non_decreasing": lambda points: _monotonic(points, "down"),
}


def _signed(value: float) -> str:
    return f"+{format_value(value)}" if value > 0 else format_value(value)


# ---------------------------------------------------------------- the condition
@dataclass(frozen=True)
class SeriesCondition:
    """A parsed series condition: a reducer and a plain condition on what it reduces to.

    For ``all`` the inner condition judges every point; for the monotonic forms it judges the
    largest step against the wrong direction (``non_increasing``: largest rise ``<= 0``).
    """

    text: str
    reducer: str
    inner: Condition

    @classmethod
    def parse(cls, text: Any) -> SeriesCondition:
        """Parse ``text``; ValueError naming the accepted forms."""
        if isinstance(text, SeriesCondition):
            return text
        source = words_of(text, "a series condition", _HELP)
        if source in MONOTONIC:
            return cls(source, source, Condition(source, MONOTONIC[source][0], 0))
        word, _, rest = source.partition(" ")
        if word not in REDUCERS:
            raise ValueError(f"{text!r} is not a series condition: {_HELP}"
                             + _plain_hint(source))
        if not rest:
            raise ValueError(f"{text!r}: '{word}' needs a condition such as '{word} <= 5'")
        inner = Condition.parse(rest)
        _require_numeric(text, word, inner)
        return cls(source, word, inner)

    def check(self, points: Sequence[Point], label: str = "value") -> SeriesResult:
        """Judge ``points``; Unmeasurable when they cannot be judged."""
        numbers = numeric_points(points)
        if self.reducer == "all":
            return self._check_all(numbers, label)
        reduction = _REDUCE[self.reducer](numbers)
        ok = self.inner.check(reduction.value)
        return SeriesResult(ok, reduction.value, self._bound(reduction.shown)
                            .describe(label, reduction.value))

    def pair(self, label: str, points: Sequence[Point]) -> Pair:
        """The ``Pair`` that ``opsgate.evaluate`` judges the same way as ``check``."""
        from opsgate.config.base import Pair  # here: opsgate.config imports the kinds

        try:
            numbers = numeric_points(points)
        except Unmeasurable as exc:
            return Pair(label, None, self._bound("", unmeasurable=str(exc)))
        if self.reducer == "all":
            return Pair(label, numbers[-1][1], replace(self.inner, text=self.text), numbers)
        reduction = _REDUCE[self.reducer](numbers)
        return Pair(label, reduction.value, self._bound(reduction.shown))

    def _bound(self, shown: str, unmeasurable: str | None = None) -> ReducedCondition:
        return ReducedCondition(self.text, self.inner.op, self.inner.operand, self.inner.upper,
                                shown=shown, unmeasurable=unmeasurable)

    def _check_all(self, numbers: list[tuple[float, float]], label: str) -> SeriesResult:
        """Every point must hold; the sentence matches ``opsgate.evaluate``'s for ranges."""
        bad = [(ts, value) for ts, value in numbers if not self.inner.check(value)]
        if bad:
            timestamp, value = bad[0]
            return SeriesResult(False, value, f"{label} ({format_value(value)} at "
                                f"{at(timestamp)}; {len(bad)} of {len(numbers)} points) "
                                f"{self.text}")
        last = numbers[-1][1]
        return SeriesResult(True, last, f"{label} ({format_value(last)} last; all "
                            f"{len(numbers)} points) {self.text}")


def _require_numeric(text: str, word: str, inner: Condition) -> None:
    """Series conditions compare numbers: refuse ``matches``, ``contains``, words."""
    allowed = _ORDERING | ({"in"} if word == "all" else set())
    if inner.op not in allowed:
        raise ValueError(f"{text!r}: '{word}' compares numbers; use <, <=, >, >=, ==, != or "
                         f"'between A and B'{' or in [..]' if word == 'all' else ''}")
    operands = inner.operand if inner.op == "in" else [inner.operand]
    for operand in operands:
        try:
            as_number(operand)
        except Unmeasurable:
            raise ValueError(f"{text!r}: {format_value(operand)} is not a number") from None


def _plain_hint(source: str) -> str:
    if re.match(r"^(<=|>=|==|!=|<|>|between )", source):
        return f" (for every point write 'all {source}', for the latest 'last {source}')"
    return ""


SeriesConditionText = Annotated[
    SeriesCondition,
    BeforeValidator(SeriesCondition.parse),
    PlainSerializer(lambda condition: condition.text, return_type=str),
]
