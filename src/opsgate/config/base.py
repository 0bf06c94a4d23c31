"""What every configured check shares, and the types its fields are made of.

A check kind is one pydantic model (a subclass of ``CheckBase`` with ``kind: Literal[...]``) in
its own module under ``opsgate.kinds``. The model validates its fields, names the targets it
uses (``references``), measures (``measure``: I/O through the run's ``Context``) and says
which values to judge against which conditions (``pairs``: no I/O). Heavy libraries are
imported inside ``measure`` only, so loading an environment stays light.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)

from opsgate.conditions import Condition
from opsgate.durations import Duration

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation
    from opsgate.runner import Context

ConditionText = Annotated[
    Condition,
    BeforeValidator(Condition.parse),
    PlainSerializer(lambda condition: condition.text, return_type=str),
]


def _read_only_sql(sql: str) -> str:
    """Configured SQL must be one read (config/sqlguard.py); checked before anything runs."""
    from opsgate.config.sqlguard import check_read_only

    check_read_only(sql)
    return sql


def _valid_promql(query: str) -> str:
    from opsgate.config.promqlcheck import check_promql

    check_promql(query)
    return query


ReadOnlySql = Annotated[str, AfterValidator(_read_only_sql)]
PromQL = Annotated[str, AfterValidator(_valid_promql)]
CheckId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)]
Severity = Literal["critical", "high", "medium", "low"]


class Strict(BaseModel):
    """Every model forbids keys it does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Pair(NamedTuple):
    """One value to judge: its label, the value, the condition, and the points of a series."""

    label: str
    value: Any
    condition: Condition
    points: list[tuple[float, Any]] | None = None


class Reference(NamedTuple):
    """A target a check uses: where in the check it is named, the section, and the name."""

    key: tuple[str | int, ...]
    section: Literal["http", "databases", "prometheus"]
    name: str | None


class CheckBase(Strict):
    """Fields every check has; subclasses add their own and implement the methods below."""

    id: CheckId
    title: str
    description: str = ""
    checklists: list[str] = []
    severity: Severity = "high"
    timeout: Duration | None = None
    mutating: bool = False
    production_safe: bool = False

    def references(self) -> list[Reference]:
        """The targets this check talks to (validated to exist before the run)."""
        return []

    def target_problems(self, targets: Targets) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems with the targets this check names (e.g. a PostgreSQL check on SQLite)."""
        return []

    def requests(self) -> list[Any]:
        """The ``HttpRequest`` models this check sends (their literal headers are redacted)."""
        return []

    def budget(self, targets: Targets) -> float:
        """Seconds this check may take once it holds its target (``timeout`` wins)."""
        return self.timeout if self.timeout is not None else 10.0

    def measure(self, ctx: Context) -> Observation:
        """Probe the target(s); raise ProbeError when nothing could be measured."""
        raise NotImplementedError

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        """The values of ``observation`` to judge, each with its condition."""
        raise NotImplementedError
