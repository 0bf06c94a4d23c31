"""``kind: http``: one request, conditions on status, latency, headers, cookies, JSON, body."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

import jmespath
from pydantic import Field, field_validator, model_validator

from opsgate.conditions import Condition
from opsgate.config.base import CheckBase, ConditionText, Pair, Reference, Strict
from opsgate.durations import Duration
from opsgate.observation import MISSING
from opsgate.signing import Signing

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.observation import Observation
    from opsgate.runner import Context

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_AN_ERROR = Condition.parse("between 200 and 399")


class HttpRequest(Strict):
    method: Literal["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = "/"
    params: dict[str, str] = {}
    headers: dict[str, str | None] = {}
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: Duration | None = None
    sign: Signing | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class CookieExpect(Strict):
    """A cookie's attributes. ``domain`` matches case-insensitively, a leading dot ignored (as
    browsers do); a cookie without Domain is host-only: its domain is the request's host. A
    cookie without Path has the browser's default path (the request path's directory)."""

    present: bool = True
    httponly: bool | None = None
    secure: bool | None = None
    samesite: str | None = None
    domain: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    path: Annotated[str, Field(pattern=r"^/", max_length=1000)] | None = None

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        return None if value is None else normal_domain(value)


def normal_domain(domain: str) -> str:
    """``.Example.COM`` -> ``example.com``: how a browser compares cookie domains."""
    return domain.strip().lstrip(".").lower()


class HttpExpect(Strict):
    status: ConditionText | None = None
    latency_ms: ConditionText | None = None
    headers: dict[str, ConditionText] = {}
    json_fields: dict[str, ConditionText] = Field(default={}, alias="json")
    body: ConditionText | None = None
    cookies: dict[str, CookieExpect] = {}

    @field_validator("json_fields")
    @classmethod
    def _jmespath(cls, fields: dict[str, Condition]) -> dict[str, Condition]:
        for expression in fields:
            compile_jmespath(expression)
        return fields

    @model_validator(mode="after")
    def _something(self) -> HttpExpect:
        if not (self.status or self.latency_ms or self.headers or self.json_fields or self.body
                or self.cookies):
            raise ValueError("expect names nothing to check: give status, latency_ms, json, ...")
        return self


def compile_jmespath(expression: str) -> Any:
    """The compiled expression; ValueError naming the expression when it does not parse."""
    from jmespath.exceptions import ParseError

    try:
        return jmespath.compile(expression)
    except ParseError as exc:
        raise ValueError(f"{expression!r} is not a JMESPath expression: {exc}") from exc


class HttpRequestCheck(CheckBase):
    """A check that sends its ``request`` to one HTTP target (``http``, ``idempotency``)."""

    target: str | None = None
    request: HttpRequest = HttpRequest()

    def references(self) -> list[Reference]:
        return [Reference(("target",), "http", self.target)]

    def requests(self) -> list[HttpRequest]:
        return [self.request]

    def request_timeout(self, targets: Targets) -> float:
        """Seconds one request may take: its own timeout, else its target's."""
        return self.request.timeout or targets.http_target(self.target).timeout


class HttpCheck(HttpRequestCheck):
    kind: Literal["http"]
    expect: HttpExpect = HttpExpect(status="== 200")

    @model_validator(mode="after")
    def _mutation_declared(self) -> HttpCheck:
        if self.request.method not in SAFE_METHODS and not self.mutating:
            raise ValueError(f"a {self.request.method} request can change state: mark the check "
                             "'mutating: true' (it then runs only with --allow-mutations)")
        return self

    def budget(self, targets: Targets) -> float:
        return self.timeout if self.timeout is not None else self.request_timeout(targets)

    def measure(self, ctx: Context) -> Observation:
        return ctx.http_request(self.target, self.request, self.budget(ctx.targets))

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        return http_pairs(self.expect, observation.fields)


def http_pairs(expect: HttpExpect, fields: dict[str, Any]) -> Iterable[Pair]:
    """The pairs of an ``expect`` block over the fields of an HTTP observation."""
    if expect.status is not None:
        yield Pair("status", fields.get("status"), expect.status)
    else:  # an error answer never passes on its body alone: say which status is expected
        yield Pair("status", fields.get("status"), NOT_AN_ERROR)
    if expect.latency_ms is not None:
        yield Pair("latency_ms", fields.get("latency_ms"), expect.latency_ms)
    headers = fields.get("headers") or {}
    for name, condition in expect.headers.items():
        yield Pair(f"header {name}", headers.get(name.lower()), condition)
    for expression, condition in expect.json_fields.items():
        yield Pair(f"json {expression}", json_field(fields.get("json"), expression), condition)
    if expect.body is not None:
        yield Pair("body", fields.get("body"), expect.body)
    cookies = fields.get("cookies") or {}
    for name, wanted in expect.cookies.items():
        seen = cookies.get(name) or {"present": False}
        for attribute in ("present", "httponly", "secure", "samesite"):
            expected = getattr(wanted, attribute)
            if expected is not None and (attribute == "present" or seen["present"]):
                yield Pair(f"cookie {name} {attribute}", seen.get(attribute),
                           Condition.parse(f"== {str(expected).lower()}"))
        if seen["present"]:
            yield from _scope_pairs(name, wanted, seen)


def _scope_pairs(name: str, wanted: CookieExpect, seen: dict[str, Any]) -> Iterator[Pair]:
    """Domain and path, as exact text: ``cookie sid domain (old.example.com) == example.com``."""
    if wanted.domain is not None:
        domain = seen.get("domain")
        label = f"cookie {name} domain" + (" (host-only)" if not domain else "")
        value = normal_domain(domain) if domain else seen.get("host") or MISSING
        yield Pair(label, value, Condition(f"== {wanted.domain}", "==", wanted.domain))
    if wanted.path is not None:
        label = f"cookie {name} path" + ("" if seen.get("path") else " (default)")
        value = seen.get("path") or seen.get("default_path") or MISSING
        yield Pair(label, value, Condition(f"== {wanted.path}", "==", wanted.path))


def json_field(document: Any, expression: str) -> Any:
    """The value at ``expression`` in ``document``; MISSING when there is no JSON body."""
    if document is None:
        return MISSING
    return jmespath.search(expression, document)


MODEL = HttpCheck
