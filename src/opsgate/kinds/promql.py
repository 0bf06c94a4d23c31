"""``kind: promql``: an instant query (every series must hold) or a range (every point)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from opsgate.config.base import CheckBase, ConditionText, Pair, PromQL, Reference, Strict
from opsgate.durations import Duration

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation, Subject
    from opsgate.runner import Context


class PromRange(Strict):
    last: Duration
    step: Duration = 60.0


class PromqlCheck(CheckBase):
    kind: Literal["promql"]
    query: PromQL
    expect: ConditionText
    range: PromRange | None = None
    label: str | None = None

    def references(self) -> list[Reference]:
        return [Reference(("query",), "prometheus", None)]

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        return targets.prometheus.timeout if targets.prometheus else 10.0

    def measure(self, ctx: Context) -> Observation:
        window = (self.range.last, self.range.step) if self.range else None
        return ctx.promql(self.query, self.budget(ctx.targets), window=window)

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        for subject in observation.subjects:
            yield Pair(series_label(self.label, subject), subject.value, self.expect,
                       subject.points)


def series_label(label: str | None, subject: Subject) -> str:
    """``p95 seconds{route="/x"}``: the check's label with the series' labels."""
    if not label:
        return subject.label
    labels = subject.label[subject.label.find("{"):] if "{" in subject.label else ""
    return f"{label}{labels}" if labels not in ("", "{}") else label


MODEL = PromqlCheck
