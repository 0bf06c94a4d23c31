"""``kind: idempotency``: the Idempotency-Key rules of a mutating endpoint, in one check (V11).

With a fresh random key (uuid4, never reused) the check sends the configured request, then the
same request again (``replay``: same status, same JSON, compared in full or at the ``compare``
JMESPath expressions), then the same key with ``other_json`` (``conflict``: a 4xx by default).
With ``expect.in_flight`` it also sends two requests with one new key at the same moment (two
threads released by a barrier): one must be accepted (2xx), the other must meet ``in_flight``
(``== 409``). ``in_flight_json`` can slow the first one down (``delay_ms``) so they overlap.

The key is secret-like: it stays out of messages (evidence keeps it in the request headers,
where the redactor masks header names matching ``*key*``). A first request that is not
accepted stops the check there: its rules cannot be judged on a refused request.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import jmespath
from pydantic import Field, field_validator, model_validator

from opsgate.conditions import Condition
from opsgate.config.base import ConditionText, Pair, Strict
from opsgate.errors import ProbeError
from opsgate.kinds.flow import TargetSession, holds
from opsgate.kinds.http import HttpRequest, HttpRequestCheck, compile_jmespath
from opsgate.observation import Observation, utcnow

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.runner import Context

ACCEPTED = Condition.parse("between 200 and 299")
ABSENT = "(absent)"
KEY_MASK = "[idempotency key]"


class IdempotencyExpect(Strict):
    first: ConditionText = ACCEPTED
    replay: Literal["same_response"] = "same_response"
    conflict: ConditionText = Condition.parse("in [400, 409, 422]")
    in_flight: ConditionText | None = None


class IdempotencyCheck(HttpRequestCheck):
    kind: Literal["idempotency"]
    request: HttpRequest
    key_header: str = Field(default="Idempotency-Key", min_length=1)
    other_json: Any
    compare: list[str] | None = None
    in_flight_json: Any = None
    expect: IdempotencyExpect = IdempotencyExpect()

    @field_validator("compare")
    @classmethod
    def _jmespath(cls, compare: list[str] | None) -> list[str] | None:
        if compare is not None and not compare:
            raise ValueError("compare lists no expression; leave it out to compare the whole JSON")
        for expression in compare or []:
            compile_jmespath(expression)
        return compare

    @model_validator(mode="after")
    def _consistent(self) -> IdempotencyCheck:
        if not self.mutating:
            raise ValueError("an idempotency check sends requests that change state: mark it "
                             "'mutating: true' (it then runs only with --allow-mutations)")
        if self.request.json_body is None:
            raise ValueError("request needs a 'json' body (other_json is the other payload)")
        if self.other_json == self.request.json_body:
            raise ValueError("other_json equals request.json: give a different payload")
        if self.in_flight_json is not None and self.expect.in_flight is None:
            raise ValueError("in_flight_json is given but expect.in_flight is not: say what "
                             "the second of two simultaneous requests gets (e.g. '== 409')")
        return self

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        requests = 4 if self.expect.in_flight is not None else 3
        return self.request_timeout(targets) * requests

    def measure(self, ctx: Context) -> Observation:
        return IdempotencyRun(self, ctx).run()

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        fields = observation.fields
        yield Pair("first: status", fields["first"]["status"], self.expect.first)
        if "replay" in fields:
            yield from replay_pairs(fields["first"], fields["replay"], self.compare)
        if "conflict" in fields:
            yield Pair("conflict: status", fields["conflict"]["status"], self.expect.conflict)
        if "in_flight" in fields and self.expect.in_flight is not None:
            yield from in_flight_pairs(fields["in_flight"], self.expect.in_flight)


# ---------------------------------------------------------------- judgement
def replay_pairs(first: dict[str, Any], replay: dict[str, Any],
                 compare: list[str] | None) -> Iterator[Pair]:
    """The replay must give the first answer again: same status, same JSON (or body)."""
    yield Pair("replay: status", replay["status"], same_as(first["status"]))
    document = first["json"]
    if not isinstance(document, dict | list) or (compare is None and isinstance(document, list)):
        yield Pair("replay: body", replay["body"], same_as(first["body"]))
    elif compare is None:
        answer = replay["json"] if isinstance(replay["json"], dict) else {}
        for key, value in document.items():
            yield Pair(f"replay: json {key}", _shown(answer.get(key, ABSENT)),
                       same_as(_shown(value)))
    else:
        for expression in compare:
            expected = jmespath.search(expression, document)
            # nothing at ``expression`` in the first answer: the pair cannot be judged (error)
            yield Pair(f"replay: json {expression}",
                       None if expected is None else _at(replay["json"], expression),
                       same_as(expected))


def same_as(expected: Any) -> Condition:
    """``== <first answer's value>`` as a condition (built, not parsed: any JSON value)."""
    text = json.dumps(expected, ensure_ascii=False, default=str)
    text = text if len(text) <= 60 else text[:57] + "..."
    return Condition(f"== {text} (as the first answer)", "==", expected)


def _at(document: Any, expression: str) -> Any:
    """The value at ``expression``, ABSENT when the answer has none (so it compares unequal)."""
    if not isinstance(document, dict | list):
        return ABSENT
    value = jmespath.search(expression, document)
    return ABSENT if value is None else value


def _shown(value: Any) -> Any:
    """A condition cannot judge None: a JSON null in whole-JSON comparison is the text null."""
    return "null" if value is None else value


def in_flight_pairs(pair: list[dict[str, Any]], condition: Condition) -> Iterator[Pair]:
    """Of two simultaneous requests with one key, one is accepted and the other is refused."""
    statuses = sorted((answer["status"] for answer in pair),
                      key=lambda status: not ACCEPTED.check(status))
    yield Pair("in_flight: accepted status", statuses[0], ACCEPTED)
    yield Pair("in_flight: concurrent status", statuses[1], condition)


# ---------------------------------------------------------------- measuring
class IdempotencyRun:
    """One run of the check: first, replay, conflict, and the in-flight pair."""

    def __init__(self, check: IdempotencyCheck, ctx: Context):
        self.check, self.ctx = check, ctx
        self.key = str(uuid.uuid4())
        self.fields: dict[str, Any] = {}
        self.asked: dict[str, Any] = {"idempotency_header": check.key_header}
        self.seen: dict[str, Any] = {}
        self.signatures: list[str] = []  # of signed requests, for the run's redactor

    def run(self) -> Observation:
        started = utcnow()
        self.ctx.begin(self.check.budget(self.ctx.targets))
        with TargetSession(self.ctx, self.check.target) as session:
            self.asked["target"] = session.name
            first = self._send(session, "first", self.check.request)
            if not holds([Pair("first", first.fields["status"], self.check.expect.first)]):
                self.seen["not_run"] = "replay, conflict and in-flight: the first request " \
                                       "was not accepted"
            else:
                self._send(session, "replay", self.check.request)
                self._send(session, "conflict", self._with_json(self.check.other_json))
                if self.check.expect.in_flight is not None:
                    self._in_flight(session)
        self.fields["secrets"] = self.signatures
        return Observation("idempotency", self.asked, self.seen, self.fields,
                           started_at=started, finished_at=utcnow())

    def _with_json(self, body: Any) -> HttpRequest:
        return self.check.request.model_copy(update={"json_body": body})

    def _keyed(self, request: HttpRequest, key: str) -> HttpRequest:
        return request.model_copy(
            update={"headers": {**request.headers, self.check.key_header: key}})

    def _send(self, session: TargetSession, name: str, request: HttpRequest) -> Observation:
        """Send ``request`` with the run's key; keep its evidence under ``name``."""
        self.ctx.progress(f"{name} request")
        built = session.build(self._keyed(request, self.key))
        try:
            observation = session.send(built, session.timeout(request))
        except ProbeError as exc:
            raise self._error(name, exc) from exc
        self._keep(name, observation)
        self.fields[name] = self._answer(observation)
        return observation

    def _in_flight(self, session: TargetSession) -> None:
        """Two requests with one new key, released together by a barrier; they hold two of the
        target's slots, since they are two requests in flight at once."""
        self.ctx.progress("in-flight pair")
        body = self.check.in_flight_json
        request = self._keyed(self._with_json(body) if body is not None else self.check.request,
                              str(uuid.uuid4()))
        seconds = session.timeout(request)
        barrier = threading.Barrier(2)

        def one(_: int) -> Observation:
            built = session.build(request)
            barrier.wait(timeout=seconds)
            return session.send(built, seconds, hold_slot=False)

        with session.slot(2), ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="opsgate-in-flight") as pool:
            futures = [pool.submit(one, index) for index in range(2)]
            try:
                answers = [future.result() for future in futures]
            except (ProbeError, threading.BrokenBarrierError) as exc:
                error = exc if isinstance(exc, ProbeError) else ProbeError(
                    "the two in-flight requests could not be started together")
                raise self._error("in_flight", error) from exc
        for answer in answers:
            self.signatures += answer.fields.get("secrets", [])
        self.asked["in_flight"] = [answer.asked for answer in answers]
        self.seen["in_flight"] = {"answers": [answer.seen for answer in answers],
                                  "overlapped": _overlapped(answers)}
        if not _overlapped(answers):
            self.seen["in_flight"]["note"] = (
                "the two requests did not overlap; give in_flight_json a body that makes the "
                "server slower (e.g. delay_ms) so the second arrives while the first runs")
        self.fields["in_flight"] = [self._answer(answer) for answer in answers]

    def _keep(self, name: str, observation: Observation) -> None:
        self.signatures += observation.fields.get("secrets", [])
        self.asked[name] = observation.asked
        self.seen[name] = observation.seen

    def _answer(self, observation: Observation) -> dict[str, Any]:
        """What the judgement reads of one answer, with the key masked (never in messages)."""
        fields = observation.fields
        return {"status": fields["status"], "json": _without(fields.get("json"), self.key),
                "body": _without(fields.get("body"), self.key)}

    def _error(self, name: str, exc: ProbeError) -> ProbeError:
        """``exc`` naming the request that could not be measured, with the evidence so far."""
        self.signatures += getattr(exc, "secrets", [])
        self.asked[name] = exc.asked
        self.seen[name] = {"error": str(exc), **exc.seen}
        error = type(exc)(f"{name} request: {exc}", asked=self.asked, seen=self.seen)
        error.secrets = self.signatures  # type: ignore[attr-defined]
        return error


def _overlapped(answers: list[Observation]) -> bool:
    """Whether the two requests were in flight at the same time."""
    return max(a.started_at for a in answers) < min(a.finished_at for a in answers)


def _without(value: Any, key: str) -> Any:
    """``value`` with every occurrence of the key replaced by a mask."""
    if isinstance(value, str):
        return value.replace(key, KEY_MASK)
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_without(item, key) for item in value]
    return value


MODEL = IdempotencyCheck
