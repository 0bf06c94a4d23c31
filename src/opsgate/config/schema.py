"""The environment file's shape, validated by pydantic: unknown keys and wrong types are errors."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from opsgate.conditions import Condition
from opsgate.durations import Duration

ConditionText = Annotated[
    Condition,
    BeforeValidator(Condition.parse),
    PlainSerializer(lambda condition: condition.text, return_type=str),
]
CheckId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=80)]
Severity = Literal["critical", "high", "medium", "low"]


class Strict(BaseModel):
    """Every model forbids keys it does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- targets
class HttpTarget(Strict):
    base_url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = {}
    timeout: Duration = 10.0
    verify_tls: bool = True
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    retries: Annotated[int, Field(ge=0, le=2)] = 2


class DatabaseTarget(Strict):
    url: str
    connect_timeout: Duration = 5.0
    statement_timeout: Duration = 5.0
    lock_timeout: Duration = 1.0
    idle_in_transaction_timeout: Duration = 10.0
    max_connections: Annotated[int, Field(ge=1, le=2)] = 2

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, url: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise ValueError(
                "is not a SQLAlchemy URL such as postgresql+psycopg://host/db") from exc
        if parsed.get_backend_name() not in ("postgresql", "sqlite"):
            raise ValueError("only postgresql and sqlite databases are supported")
        return url


class PrometheusTarget(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = {}
    timeout: Duration = 10.0
    concurrency: Annotated[int, Field(ge=1, le=16)] = 4


class Targets(Strict):
    http: dict[str, HttpTarget] = {}
    databases: dict[str, DatabaseTarget] = {}
    prometheus: PrometheusTarget | None = None


# ---------------------------------------------------------------- checks
class HttpRequest(Strict):
    method: Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = "/"
    params: dict[str, str] = {}
    headers: dict[str, str | None] = {}
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: Duration | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class HttpExpect(Strict):
    status: ConditionText | None = None
    latency_ms: ConditionText | None = None
    headers: dict[str, ConditionText] = {}
    json_fields: dict[str, ConditionText] = Field(default={}, alias="json")
    body: ConditionText | None = None

    @field_validator("json_fields")
    @classmethod
    def _jmespath(cls, fields: dict[str, Condition]) -> dict[str, Condition]:
        import jmespath
        from jmespath.exceptions import ParseError

        for expression in fields:
            try:
                jmespath.compile(expression)
            except ParseError as exc:
                raise ValueError(f"{expression!r} is not a JMESPath expression: {exc}") from exc
        return fields

    @model_validator(mode="after")
    def _something(self) -> HttpExpect:
        if not (self.status or self.latency_ms or self.headers or self.json_fields or self.body):
            raise ValueError("expect names nothing to check: give status, latency_ms, json, ...")
        return self


class CheckBase(Strict):
    id: CheckId
    title: str
    description: str = ""
    checklists: list[str] = []
    severity: Severity = "high"
    timeout: Duration | None = None


class HttpCheck(CheckBase):
    kind: Literal["http"]
    target: str | None = None
    request: HttpRequest = HttpRequest()
    expect: HttpExpect = HttpExpect(status="== 200")


class SqlCheck(CheckBase):
    kind: Literal["sql"]
    database: str | None = None
    scalar: str | None = None
    violations: str | None = None
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


class PromRange(Strict):
    last: Duration
    step: Duration = 60.0


class PromqlCheck(CheckBase):
    kind: Literal["promql"]
    query: str
    expect: ConditionText
    range: PromRange | None = None
    label: str | None = None


AnyCheck = Annotated[HttpCheck | SqlCheck | PromqlCheck, Field(discriminator="kind")]
Check = HttpCheck | SqlCheck | PromqlCheck


class Checklist(Strict):
    description: str = ""


# ---------------------------------------------------------------- environment
class Environment(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    description: str = ""
    production: bool = False
    targets: Targets = Targets()
    checklists: dict[str, Checklist] = {}
    checks: list[AnyCheck] = []
