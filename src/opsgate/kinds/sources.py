"""Scalar sources: where a check kind reads one value, named entirely in the environment file.

Exactly one of::

    http:   {target: api, request: {path: /internal/outbox/dlq}, value: count}   # JMESPath
    sql:    {database: main, query: "select count(*) from dead_letters"}
    promql: {query: "sum(outbox_dead_letters)", offset: 1d}    # offset: the value that long ago

``Source.measure(ctx, seconds)`` returns a ``Reading`` (the value, what was asked, what was
seen). It fails closed: a non-2xx answer, no JSON body, a missing JSON field or ``null``, no
row or NULL, an empty vector, several series or a NaN are errors (``NoData`` or
``ProbeQueryError``), never a value. ``measure_range`` reads a PromQL source over a window in
one range query. A kind lists its sources' targets with ``references(key)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NamedTuple

import jmespath
from pydantic import Field, field_validator, model_validator

from opsgate.config.base import PromQL, ReadOnlySql, Reference, Strict
from opsgate.durations import Duration
from opsgate.errors import NoData, ProbeQueryError
from opsgate.kinds.http import SAFE_METHODS, HttpRequest, compile_jmespath

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation, Subject
    from opsgate.runner import Context

JmesPath = Annotated[str, Field(min_length=1)]


class Reading(NamedTuple):
    """One value read from a source, with the evidence of how."""

    value: Any
    asked: dict[str, Any]
    seen: dict[str, Any]


class HttpSource(Strict):
    """A field of a JSON answer: ``value`` is a JMESPath expression into the body."""

    target: str | None = None
    request: HttpRequest = HttpRequest()
    value: JmesPath

    @field_validator("value")
    @classmethod
    def _jmespath(cls, expression: str) -> str:
        compile_jmespath(expression)
        return expression


class SqlSource(Strict):
    """A scalar query: one row, one column."""

    database: str | None = None
    query: ReadOnlySql


class PromqlSource(Strict):
    """An instant query returning exactly one series (or a scalar)."""

    query: PromQL
    offset: Duration | None = None


class Source(Strict):
    """Exactly one of ``http``, ``sql``, ``promql``."""

    CHOICES: ClassVar[tuple[str, ...]] = ("http", "sql", "promql")

    http: HttpSource | None = None
    sql: SqlSource | None = None
    promql: PromqlSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        given = [name for name in self.CHOICES if getattr(self, name) is not None]
        if len(given) != 1:
            named = f"got {' and '.join(given)}" if given else "got none"
            raise ValueError(f"give exactly one of {', '.join(self.CHOICES)} ({named})")
        return self

    @property
    def way(self) -> str:
        """The name of the source given: ``http``, ``sql`` or ``promql``."""
        return next(name for name in self.CHOICES if getattr(self, name) is not None)

    def default_label(self) -> str:
        """A label for messages when the check gives none."""
        if self.http is not None:
            return self.http.value
        if self.promql is not None:
            query = self.promql.query
            return query if len(query) <= 60 else query[:57] + "..."
        return "value"

    def mutation(self) -> str | None:
        """The HTTP method when this source's request may change state, else None."""
        if self.http is not None and self.http.request.method not in SAFE_METHODS:
            return self.http.request.method
        return None

    def references(self, key: tuple[str | int, ...]) -> list[Reference]:
        """The target this source reads, for ``key`` (its place in the check)."""
        if self.http is not None:
            return [Reference((*key, "http", "target"), "http", self.http.target)]
        if self.sql is not None:
            return [Reference((*key, "sql", "database"), "databases", self.sql.database)]
        if self.promql is not None:
            return [Reference((*key, "promql", "query"), "prometheus", None)]
        return []

    def budget(self, targets: Targets) -> float:
        """Seconds one reading may take."""
        if self.http is not None:
            target = targets.http_target(self.http.target)
            return self.http.request.timeout or target.timeout
        if self.sql is not None:
            database = targets.database(self.sql.database)
            return database.connect_timeout + database.statement_timeout
        return targets.prometheus.timeout if targets.prometheus else 10.0

    def measure(self, ctx: Context, seconds: float) -> Reading:
        """Read the value now; raise ProbeError when there is none."""
        if self.http is not None:
            return _read_http(self.http, ctx, seconds)
        if self.sql is not None:
            return _read_sql(self.sql, ctx, seconds)
        assert self.promql is not None
        return _read_promql(self.promql, ctx, seconds)

    def measure_range(self, ctx: Context, last: float, step: float,
                      seconds: float) -> Reading:
        """A PromQL source over the last ``last`` seconds: the value is the list of points."""
        if self.promql is None:
            raise ValueError("only a promql source is read as a range")
        observation = ctx.promql(self.promql.query, seconds, window=(last, step), full_range=False,
                                 at=_at(self.promql.offset))
        subject = _only_series(observation)
        return Reading(list(subject.points or []), observation.asked, observation.seen)


def require_declared_mutation(mutating: bool, sources: Iterable[Source | None]) -> None:
    """A source sending a non-safe method needs the check marked ``mutating: true``."""
    for source in sources:
        method = source.mutation() if source is not None else None
        if method and not mutating:
            raise ValueError(f"a {method} request can change state: mark the check "
                             "'mutating: true' (it then runs only with --allow-mutations)")


def requests(sources: Iterable[Source | None]) -> list[HttpRequest]:
    """The HTTP requests of ``sources`` (for redacting the headers written in them)."""
    return [source.http.request for source in sources
            if source is not None and source.http is not None]


# ---------------------------------------------------------------- readers
def _read_http(spec: HttpSource, ctx: Context, seconds: float) -> Reading:
    observation = ctx.http_request(spec.target, spec.request, seconds)
    fields = observation.fields
    asked = {**observation.asked, "value": spec.value}
    seen = {key: observation.seen[key] for key in ("status", "latency_ms", "body_excerpt")
            if key in observation.seen}
    status = fields.get("status")
    if not isinstance(status, int) or not 200 <= status < 300:
        raise ProbeQueryError(f"HTTP {status} from {asked.get('url')}: a source reads a value "
                              "only from a 2xx answer", asked=asked, seen=seen)
    document = fields.get("json")
    if document is None:
        raise NoData("the answer has no JSON body to read the value from", asked=asked,
                     seen=seen)
    value = jmespath.search(spec.value, document)
    if value is None:
        raise NoData(f"the JSON body has no value at {spec.value!r} (missing or null)",
                     asked=asked, seen=seen)
    return Reading(value, asked, {**seen, "value": value})


def _read_sql(spec: SqlSource, ctx: Context, seconds: float) -> Reading:
    observation = ctx.sql_scalar(spec.database, spec.query, seconds)
    value = observation.fields.get("value")
    if value is None:
        raise NoData("the query returned NULL; a source needs a value (use coalesce() when "
                     "NULL means zero)", asked=observation.asked, seen=observation.seen)
    return Reading(value, observation.asked, {**observation.seen, "value": value})


def _read_promql(spec: PromqlSource, ctx: Context, seconds: float) -> Reading:
    observation = ctx.promql(spec.query, seconds, at=_at(spec.offset))
    subject = _only_series(observation)
    if isinstance(subject.value, str) or subject.value is None:
        raise NoData(f"the query's value is {subject.value} (not a finite number)",
                     asked=observation.asked, seen=observation.seen)
    asked = {**observation.asked, **({"offset_s": spec.offset} if spec.offset else {})}
    return Reading(subject.value, asked, {**observation.seen, "value": subject.value})


def _only_series(observation: Observation) -> Subject:
    subjects = observation.subjects
    if len(subjects) != 1:
        raise NoData(f"the query returned {len(subjects)} series; a source needs exactly one "
                     "(aggregate with sum, max, ...)", asked=observation.asked,
                     seen=observation.seen)
    return subjects[0]


def _at(offset: float | None) -> float | None:
    return time.time() - offset if offset else None
