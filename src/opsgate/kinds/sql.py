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
    require_rows: str | None = None  # a table that must not be empty for "no violators" to count

    @model_validator(mode="after")
    def _one_query(self) -> SqlCheck:
        if bool(self.scalar) == bool(self.violations):
            raise ValueError("give exactly one of 'scalar' (with 'expect') or 'violations'")
        if self.scalar and self.expect is None:
            raise ValueError("a 'scalar' query needs an 'expect' condition such as '== 0'")
        if self.violations and self.expect is not None:
            raise ValueError("a 'violations' query passes when it returns no rows; drop 'expect'")
        if self.require_rows is not None:
            from opsgate.sqlnames import validate_qualified

            if not self.violations:
                raise ValueError("'require_rows' goes with a 'violations' query")
            validate_qualified(self.require_rows)  # a plain (schema.)table name
        return self

    def references(self) -> list[Reference]:
        return [Reference(("database",), "databases", self.database)]

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        return targets.database(self.database).budget()

    def measure(self, ctx: Context) -> Observation:
        if self.violations:
            if self.require_rows is not None:
                self._require_rows(ctx)
            return ctx.sql_violations(self.database, self.violations, self.sample,
                                      self.budget(ctx.targets))
        return ctx.sql_scalar(self.database, self.scalar, self.budget(ctx.targets),
                              label=self.label or "value")

    def _require_rows(self, ctx: Context) -> None:
        """No violator among no rows proves nothing: an empty table is could-not-measure."""
        from opsgate.errors import NoData
        from opsgate.sqlnames import quote_qualified

        assert self.require_rows is not None
        sql = f"select exists (select 1 from {quote_qualified(self.require_rows)}) as has_rows"
        observation = ctx.sql_scalar(self.database, sql, self.budget(ctx.targets))
        if not observation.fields["value"]:
            raise NoData(f"{self.require_rows} has no rows: 'no violations' would prove nothing",
                         asked=observation.asked, seen=observation.seen)

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        if self.violations:
            yield Pair("violations", observation.fields.get("violations"), NO_VIOLATIONS)
            return
        assert self.expect is not None
        for subject in observation.subjects:
            yield Pair(self.label or subject.label, subject.value, self.expect)


MODEL = SqlCheck
