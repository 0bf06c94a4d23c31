"""The end state of one check: passed, failed (measured, condition false) or error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["passed", "failed", "error", "not_run"]


@dataclass
class Judgement:
    """One condition applied to one measured value."""

    label: str
    condition: str
    observed: Any
    ok: bool | None  # None: could not be judged
    text: str


@dataclass
class Outcome:
    """What a check concluded, with every judgement behind it."""

    status: Status
    message: str
    judgements: list[Judgement] = field(default_factory=list)
    reason: str | None = None  # for errors: timeout, connection, query, no_data, ...

    @property
    def condition(self) -> str:
        return "; ".join(dict.fromkeys(f"{j.label} {j.condition}" for j in self.judgements))

    @property
    def observed(self) -> Any:
        """The observed value, or label -> value when several were judged."""
        labels = [j.label for j in self.judgements]
        repeated = len(set(labels)) < len(labels)
        values = {(f"{j.label} {j.condition}" if repeated else j.label): j.observed
                  for j in self.judgements}
        if len(values) == 1:
            return next(iter(values.values()))
        return values or None
