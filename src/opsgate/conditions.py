"""Conditions written the way runbooks say them: ``< 0.3``, ``== 0``, ``between 1 and 5``.

A condition never does I/O. It parses once, at configuration time, and then judges values:
``Condition.parse("< 0.3").check(1.42)`` is False, and ``describe("p95", 1.42)`` reads
``p95 (1.42) < 0.3``. A value it cannot judge (missing, NaN, a word where a number belongs)
raises ``Unmeasurable``, which the check reports as an error, never as a pass.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml

_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_WORDS = ("between", "equals", "contains", "matches", "in", "exists")
_HELP = (
    "write a comparison such as '< 0.3', '<= 5', '== 0', '!= error', '>= 1', "
    "'between 1 and 5', 'equals ok', 'contains json', 'matches ^2..$', 'in [200, 204]' or 'exists'"
)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Unmeasurable(Exception):
    """The observed value cannot be judged (missing, NaN, infinite, wrong type)."""


def _operand(text: str) -> Any:
    """A YAML scalar: ``0.3`` -> 0.3, ``ok`` -> 'ok', ``true`` -> True, ``[1, 2]`` -> list."""
    text = text.strip()
    if not text:
        raise ValueError("the condition has no value to compare with")
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader (C when built)
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot read the value {text!r}: {exc}") from exc


def numeric(value: Any) -> float | None:
    """``value`` as a float when it is a number (not a bool) or a numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    """``value`` as a finite float when it is numeric (numbers or numeric strings)."""
    number = numeric(value)
    if number is None:
        return None
    if math.isnan(number) or math.isinf(number):
        raise Unmeasurable(f"the value is {_special(number)} (not a finite number)")
    return number


def _special(number: float) -> str:
    """NaN, +Inf or -Inf, written as Prometheus writes them."""
    if math.isnan(number):
        return "NaN"
    return "+Inf" if number > 0 else "-Inf"


def words_of(text: Any, what: str, help_text: str) -> str:
    """``text`` with its runs of spaces made one; ValueError when it is not a string."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is a string, got {text!r}: {help_text}")
    return " ".join(text.split())


def format_value(value: Any) -> str:
    """A short readable rendering of an observed value."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 80 else f'"{value[:77]}..."'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: an operator and its operand(s)."""

    text: str
    op: str
    operand: Any = None
    upper: Any = None

    @classmethod
    def parse(cls, text: Any) -> Condition:
        """Parse a condition string; raise ValueError naming the accepted forms."""
        if isinstance(text, Condition):
            return text
        if not isinstance(text, str):
            raise ValueError(f"a condition is a string, got {text!r}: {_HELP}")
        source = text.strip()
        for symbol in _COMPARATORS:
            if source.startswith(symbol):
                return cls(source, symbol, _operand(source[len(symbol):]))
        word, _, rest = source.partition(" ")
        if word == "between":
            match = re.fullmatch(r"(.+?)\s+and\s+(.+)", rest.strip())
            if not match:
                raise ValueError(f"{text!r}: write 'between LOW and HIGH'")
            low, high = _operand(match.group(1)), _operand(match.group(2))
            if _number(low) is None or _number(high) is None or float(low) > float(high):
                raise ValueError(f"{text!r}: LOW and HIGH must be numbers with LOW <= HIGH")
            return cls(source, "between", float(low), float(high))
        if word == "exists" and not rest.strip():
            return cls(source, "exists")
        if word == "matches":
            try:
                re.compile(rest.strip())
            except re.error as exc:
                raise ValueError(f"{text!r}: the regular expression is invalid ({exc})") from exc
            return cls(source, "matches", rest.strip())
        if word == "in":
            values = _operand(rest)
            if not isinstance(values, list) or not values:
                raise ValueError(f"{text!r}: write 'in [A, B, ...]'")
            return cls(source, "in", values)
        if word in ("equals", "contains"):
            return cls(source, "==" if word == "equals" else "contains", _operand(rest))
        raise ValueError(f"{text!r} is not a condition: {_HELP}")

    def check(self, value: Any) -> bool:
        """Whether ``value`` satisfies the condition; Unmeasurable when it cannot be judged."""
        if isinstance(value, float) and not math.isfinite(value):
            raise Unmeasurable(f"the value is {_special(value)} (not a finite number)")
        if self.op == "exists":
            return value is not None
        if value is None:
            raise Unmeasurable("no value was observed")
        if isinstance(value, list | dict) and self.op != "contains":
            kind = "a list" if isinstance(value, list) else "an object"
            raise Unmeasurable(f"expected a single value, observed {kind} "
                               f"({format_value(value)})")
        if self.op == "between":
            number = self._require_number(value)
            return self.operand <= number <= self.upper
        if self.op == "matches":
            return re.search(self.operand, str(value)) is not None
        if self.op == "contains":
            haystack = value if isinstance(value, list | dict) else str(value)
            needle = self.operand if isinstance(haystack, list | dict) else str(self.operand)
            return needle in haystack
        if self.op == "in":
            return any(self._equal(value, item) for item in self.operand)
        if self.op in ("==", "!="):
            equal = self._equal(value, self.operand)
            return equal if self.op == "==" else not equal
        number = self._require_number(value)
        bound = _number(self.operand)
        if bound is None:
            raise Unmeasurable(f"cannot order against the non-number {self.operand!r}")
        return _COMPARATORS[self.op](number, bound)

    def describe(self, label: str, value: Any) -> str:
        """``label (observed) condition``, the line shown beside every outcome."""
        return f"{label} ({format_value(value)}) {self.text}"

    @staticmethod
    def _require_number(value: Any) -> float:
        number = _number(value)
        if number is None:
            raise Unmeasurable(f"expected a number, observed {format_value(value)}")
        return number

    @staticmethod
    def _equal(value: Any, expected: Any) -> bool:
        if isinstance(value, bool) != isinstance(expected, bool) and (
                _number(value) is not None or _number(expected) is not None):
            raise Unmeasurable(f"cannot compare {format_value(value)} with "
                               f"{format_value(expected)}: one is a boolean, the other a number")
        observed_number, expected_number = _number(value), _number(expected)
        if expected_number is not None and observed_number is None:
            raise Unmeasurable(f"expected a number, observed {format_value(value)}")
        if observed_number is not None and expected_number is not None:
            return observed_number == expected_number
        if isinstance(expected, bool) or isinstance(value, bool):
            return value is expected or str(value).lower() == str(expected).lower()
        return value == expected or str(value) == str(expected)


def is_condition_word(text: str) -> bool:
    """Whether ``text`` starts like a condition (used in error messages)."""
    return text.strip().startswith(tuple(_COMPARATORS)) or text.split(" ")[0] in _WORDS
