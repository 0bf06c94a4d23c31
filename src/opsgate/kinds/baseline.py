"""``kind: baseline``: no regression against a baseline (M7, T6).

    - id: M7
      title: canary p95 no worse than stable + 10%
      kind: baseline
      current: {promql: {query: 'p95:latency_seconds{track="canary"}'}}
      baseline: {promql: {query: 'p95:latency_seconds{track="stable"}'}}
      expect: "<= baseline * 1.1"
      label: p95 current

``current`` is a source (see ``kinds/sources.py``); ``baseline`` is a source too, a PromQL
query read as it was ``offset`` ago (``{promql: {query: ..., offset: 1d}}``: after vs before a
deploy), or a previous run's evidence (``{evidence: PATH, check: ID}``, optional
``environment``): its ``sha256`` must verify and that check's ``observed`` must be a number it
measured. A relative PATH is read from the working directory. ``expect`` is ``OP baseline``,
``OP baseline * F``, ``OP baseline + D`` or ``OP baseline - D``. Missing baseline data is an
error, never a pass: ``p95 current (0.31) <= baseline (0.25) * 1.1 = 0.275``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, PlainSerializer, model_validator

from opsgate.conditions import format_value, numeric, words_of
from opsgate.config.base import CheckBase, CheckId, Pair, Reference
from opsgate.errors import NoData
from opsgate.evidence import verify
from opsgate.kinds.sources import Reading, Source, requests, require_declared_mutation
from opsgate.observation import Observation, Subject, utcnow
from opsgate.series import ReducedCondition

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.kinds.http import HttpRequest
    from opsgate.runner import Context

EVIDENCE_BUDGET = 2.0
_EXPECT = re.compile(r"(<=|>=|==|!=|<|>)\s*baseline(?:\s*([*+-])\s*(\S+))?")
_HELP = ("write 'OP baseline', 'OP baseline * F', 'OP baseline + D' or 'OP baseline - D' "
         "with OP one of <, <=, >, >=, ==, != (e.g. '<= baseline * 1.1')")
_MEASURED = ("passed", "failed")


@dataclass(frozen=True)
class BaselineExpect:
    """``<= baseline * 1.1`` parsed: the operator, and how the threshold follows the baseline."""

    text: str
    op: str
    by: str | None = None
    amount: float = 0.0

    @classmethod
    def parse(cls, text: Any) -> BaselineExpect:
        if isinstance(text, BaselineExpect):
            return text
        source = words_of(text, "expect", _HELP)
        match = _EXPECT.fullmatch(source)
        if not match:
            raise ValueError(f"{text!r} is not a baseline condition: {_HELP}")
        op, by, amount = match.groups()
        if by is None:
            return cls(source, op)
        try:
            number = float(amount)
        except ValueError:
            raise ValueError(f"{text!r}: {amount!r} is not a number; {_HELP}") from None
        if not math.isfinite(number) or (by == "*" and number <= 0):
            raise ValueError(f"{text!r}: the {'factor' if by == '*' else 'margin'} must be a "
                             f"finite number{' above 0' if by == '*' else ''}")
        return cls(source, op, by, number)

    def threshold(self, baseline: float) -> float:
        if self.by == "*":
            return baseline * self.amount
        if self.by == "+":
            return baseline + self.amount
        if self.by == "-":
            return baseline - self.amount
        return baseline

    def condition(self, baseline: float, current: Any) -> ReducedCondition:
        """The plain condition on the current value, said with the baseline's numbers."""
        threshold = self.threshold(baseline)
        said = f"{self.op} baseline ({format_value(baseline)})"
        if self.by is not None:
            said += f" {self.by} {format_value(self.amount)} = {format_value(threshold)}"
        return ReducedCondition(self.text, self.op, threshold, shown=format_value(current),
                                said=said)


BaselineExpectText = Annotated[
    BaselineExpect,
    BeforeValidator(BaselineExpect.parse),
    PlainSerializer(lambda expect: expect.text, return_type=str),
]


class BaselineSource(Source):
    """A source, or ``evidence: PATH`` with ``check: ID`` (and ``environment`` when several)."""

    CHOICES: ClassVar[tuple[str, ...]] = ("http", "sql", "promql", "evidence")

    evidence: str | None = None
    check: CheckId | None = None
    environment: str | None = None

    @model_validator(mode="after")
    def _evidence_names_a_check(self) -> BaselineSource:
        if self.evidence is not None and self.check is None:
            raise ValueError("a baseline from evidence needs 'check: ID' (the check whose "
                             "observed value is the baseline)")
        if self.evidence is None and (self.check is not None or self.environment is not None):
            raise ValueError("'check' and 'environment' go with 'evidence: PATH'")
        return self

    def budget(self, targets: Targets) -> float:
        return EVIDENCE_BUDGET if self.evidence is not None else super().budget(targets)

    def measure(self, ctx: Context, seconds: float) -> Reading:
        if self.evidence is None:
            return super().measure(ctx, seconds)
        assert self.check is not None
        return read_evidence(Path(self.evidence), self.check, self.environment or ctx.env.name,
                             explicit=self.environment is not None)


class BaselineCheck(CheckBase):
    kind: Literal["baseline"]
    current: Source
    baseline: BaselineSource
    expect: BaselineExpectText
    label: str | None = None

    @model_validator(mode="after")
    def _safe(self) -> BaselineCheck:
        require_declared_mutation(self.mutating, [self.current, self.baseline])
        return self

    def references(self) -> list[Reference]:
        return self.current.references(("current",)) + self.baseline.references(("baseline",))

    def requests(self) -> list[HttpRequest]:
        return requests([self.current, self.baseline])

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        return self.current.budget(targets) + self.baseline.budget(targets)

    def measure(self, ctx: Context) -> Observation:
        started = utcnow()
        ctx.begin(self.budget(ctx.targets))
        baseline = self.baseline.measure(ctx, self.baseline.budget(ctx.targets))
        current = self.current.measure(ctx, self.current.budget(ctx.targets))
        asked = {"current": current.asked, "baseline": baseline.asked,
                 "expect": self.expect.text}
        seen: dict[str, Any] = {"current": current.seen, "baseline": baseline.seen}
        values = {"current": _number("current", current, asked, seen),
                  "baseline": _number("baseline", baseline, asked, seen)}
        seen["threshold"] = self.expect.threshold(values["baseline"])
        label = self.label or "current"
        return Observation("baseline", asked, seen, values, [Subject(label, values["current"])],
                           started_at=started, finished_at=utcnow())

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        baseline = observation.fields["baseline"]
        for subject in observation.subjects:
            yield Pair(subject.label, subject.value,
                       self.expect.condition(baseline, subject.value))


def _number(name: str, reading: Reading, asked: dict[str, Any], seen: dict[str, Any]) -> float:
    value = reading.value
    number = numeric(value)
    if number is None or not math.isfinite(number):
        raise NoData(f"the {name} value is {format_value(value)}, not a finite number",
                     asked=asked, seen=seen)
    return number


# ---------------------------------------------------------------- evidence baselines
def read_evidence(path: Path, check: str, environment: str, *, explicit: bool) -> Reading:
    """The observed value of ``check`` in a previous run's verified evidence.json."""
    asked = {"evidence": str(path.resolve()), "check": check, "environment": environment}
    document = _verified_document(path, asked)
    record = _record(document, check, environment, explicit, asked)
    seen = {"run_id": document.get("run_id"), "finished_at": document.get("finished_at"),
            "environment": record.get("environment"), "outcome": record.get("outcome"),
            "message": record.get("message"), "value": record.get("observed")}
    if record.get("outcome") not in _MEASURED:
        raise NoData(f"check {check!r} did not measure in that run (outcome "
                     f"{record.get('outcome')}: {record.get('message')})", asked=asked, seen=seen)
    return Reading(record.get("observed"), asked, seen)


def _verified_document(path: Path, asked: dict[str, Any]) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise NoData(f"cannot read the baseline evidence {path}: {exc.strerror}",
                     asked=asked) from None
    except ValueError as exc:
        raise NoData(f"the baseline evidence {path} is not JSON ({exc})", asked=asked) from None
    if not isinstance(document, dict) or "sha256" not in document:
        raise NoData(f"{path} is not an opsgate evidence file (no sha256)", asked=asked)
    if not verify(document):
        raise NoData(f"the baseline evidence {path} does not match its sha256: it was changed "
                     "after the run; use an unaltered evidence.json", asked=asked)
    return document


def _record(document: dict[str, Any], check: str, environment: str, explicit: bool,
            asked: dict[str, Any]) -> dict[str, Any]:
    """The record of ``check``: the only one, or the one of ``environment``."""
    records = [r for r in document.get("checks") or []
               if isinstance(r, dict) and r.get("id") == check]
    mine = [r for r in records if r.get("environment") == environment]
    chosen = mine if explicit or len(records) > 1 else records
    if len(chosen) == 1:
        return chosen[0]
    if not records:
        ids = sorted({str(r.get("id")) for r in document.get("checks") or []
                      if isinstance(r, dict)})
        raise NoData(f"the baseline evidence has no check {check!r} (checks there: "
                     f"{', '.join(ids[:20]) or 'none'})", asked=asked)
    where = ", ".join(sorted({str(r.get("environment")) for r in records}))
    raise NoData(f"the baseline evidence has check {check!r} in environment(s) {where}, "
                 f"{'not in' if not chosen else 'several times in'} {environment!r}; name the "
                 "one to compare with in 'environment:'", asked=asked)


MODEL = BaselineCheck
