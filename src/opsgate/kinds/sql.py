"""``kind: sql``: a scalar query with a condition, or a violations query that must be empty."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from opsgate.conditions import Condition
from opsgate.config.base import CheckBase, ConditionText, Pair, ReadOnlySql, Reference

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation
    from opsgate.runner import Context

NO_VIOLATIONS = Condition.parse("== 0")


class SqlCheck(CheckBase):
    kind: Literal["sql"]
    database: str | None = None
    scalar: ReadOnlySql | None = None
    violations: ReadOnlySql | None = None
    expect: ConditionText | None = None
    sample: Annotated[int, Field(ge=1, le=100)] = 10
    label: str | None = None

    @model_validator(mode="after")
    def _one_query(self) -> SqlCheck:
        if bool(self.scalar) == bool(self.violations):
            raise ValueError("give exactly one of 'scalar' (with 'expect') or 'violations'")
        if self.scalar and self.expect is None:
            raise ValueError("a 'scalar' query needs an 'expect' condition such as '== 0'")
        if self.violations and self.expect is not None:
            raise ValueError("a 'violations' query passes when it returns no rows; drop 'expect'")
        return self

    def references(self) -> list[Reference]:
        return [Reference(("database",), "databases", self.database)]

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        target = targets.databases[self.database or next(iter(targets.databases))]
        return target.connect_timeout + target.statement_timeout

    def measure(self, ctx: Context) -> Observation:
        if self.violations:
            return ctx.sql_violations(self.database, self.violations, self.sample,
                                      self.budget(ctx.targets))
        return ctx.sql_scalar(self.database, self.scalar, self.budget(ctx.targets),
                              label=self.label or "value")

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        if self.violations:
            yield Pair("violations", observation.fields.get("violations"), NO_VIOLATIONS)
            return
        assert self.expect is not None
        for subject in observation.subjects:
            yield Pair(self.label or subject.label, subject.value, self.expect)


MODEL = SqlCheck
