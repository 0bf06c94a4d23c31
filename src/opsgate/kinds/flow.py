"""``kind: flow``: ordered HTTP steps against one target (login, create then poll, replay).

Each step sends one request, judges its ``expect`` block (the ``kind: http`` one) and may
``capture`` values from its JSON body (name -> JMESPath) that fill ``{name}`` in later steps'
path, params, headers, JSON, body and conditions (``json: {effects: "== {effects}"}``). A step
with ``until`` is polled every ``poll.every`` until that block holds, ``poll.within`` passes or
the check's budget runs out; the last answer is judged. A flow run has its own HTTP client, so
cookies set by one step go with the next ones and never to another check.

A step whose expectation does not hold stops the flow (later steps do not run; the evidence
says so); a step that could not be measured, or a capture that finds nothing, makes the check
an error. Steps that change state (not GET, HEAD or OPTIONS) need ``mutating: true``.

``{run_id}`` (the run's id) and ``{uuid}`` (a fresh uuid4 per flow run, the same in every step
of that run) fill placeholders like captures do, so a signup and the login after it use one new
email each run; a capture may not take either name.

Captured values that are secrets (captured under a sensitive name such as ``access_token``, or
sent in a sensitive header such as ``Authorization``) and the signatures of signed steps are
listed in the observation's ``fields["secrets"]`` (and a ProbeError's ``secrets``) for the
run's redactor to learn.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from opsgate.conditions import Condition, Unmeasurable
from opsgate.config.base import CheckBase, Pair, Reference, Strict
from opsgate.deadline import Deadline
from opsgate.durations import Duration, format_duration
from opsgate.errors import NoData, ProbeError, ProbeTimeout
from opsgate.kinds.http import SAFE_METHODS, HttpExpect, HttpRequest, compile_jmespath, http_pairs
from opsgate.observation import MISSING, Observation, utcnow

if TYPE_CHECKING:
    from opsgate.config.targets import Targets
    from opsgate.runner import Context

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_EXPECT = HttpExpect(status="between 200 and 299")
HISTORY = 20

StepName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\- ]*$", max_length=60)]
CAPTURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")
UNIQUE = ("run_id", "uuid")
"""Placeholders every flow step may use: filled per run, never captured."""


class Poll(Strict):
    every: Duration = 1.0
    within: Duration = 30.0

    @model_validator(mode="after")
    def _positive(self) -> Poll:
        if self.every <= 0 or self.within <= 0:
            raise ValueError("poll.every and poll.within must be more than 0")
        return self


class FlowStep(Strict):
    name: StepName
    request: HttpRequest = HttpRequest()
    expect: HttpExpect | None = None
    until: HttpExpect | None = None
    poll: Poll | None = None
    capture: dict[str, str] = {}

    @field_validator("capture")
    @classmethod
    def _jmespath(cls, capture: dict[str, str]) -> dict[str, str]:
        for name, expression in capture.items():
            if not CAPTURE_NAME.fullmatch(name):
                raise ValueError(f"capture name {name!r}: use letters, digits and _ (it is "
                                 "written {name} in later steps)")
            if name in UNIQUE:
                raise ValueError(f"capture name {name!r} is reserved: {{{name}}} is filled by "
                                 "opsgate for each flow run; capture under another name")
            compile_jmespath(expression)
        return capture

    @model_validator(mode="after")
    def _poll_needs_until(self) -> FlowStep:
        if self.poll is not None and self.until is None:
            raise ValueError(f"step {self.name!r}: 'poll' needs an 'until' block to poll for")
        return self

    @property
    def checks(self) -> HttpExpect | None:
        """The block judged on the step's (last) answer besides ``until``."""
        if self.expect is None and self.until is None:
            return DEFAULT_EXPECT
        return self.expect

    @property
    def polling(self) -> Poll:
        return self.poll or Poll()


class FlowCheck(CheckBase):
    kind: Literal["flow"]
    target: str | None = None
    steps: Annotated[list[FlowStep], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> FlowCheck:
        problems = [*_duplicate_names(self.steps), *_unknown_placeholders(self.steps)]
        unsafe = [f"{s.name!r} ({s.request.method})" for s in self.steps
                  if s.request.method not in SAFE_METHODS]
        if unsafe and not self.mutating:
            problems.append(f"step{'s' if len(unsafe) > 1 else ''} {', '.join(unsafe)} can "
                            "change state: mark the check 'mutating: true' (it then runs only "
                            "with --allow-mutations)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def references(self) -> list[Reference]:
        return [Reference(("target",), "http", self.target)]

    def requests(self) -> list[HttpRequest]:
        return [step.request for step in self.steps]

    def budget(self, targets: Targets) -> float:
        if self.timeout is not None:
            return self.timeout
        timeout = targets.http_target(self.target).timeout
        return sum(step_budget(step, timeout) for step in self.steps)

    @property
    def secret_captures(self) -> frozenset[str]:
        """Captures that hold secrets: sensitive names, or sent in a sensitive header."""
        from opsgate.redaction import Redactor

        sensitive = Redactor().is_sensitive
        names = {name for step in self.steps for name in step.capture if sensitive(name)}
        for step in self.steps:
            for header, value in step.request.headers.items():
                if value and sensitive(header):
                    names |= set(PLACEHOLDER.findall(value))
        return frozenset(names)

    def measure(self, ctx: Context) -> Observation:
        return FlowRun(self, ctx).run()

    def pairs(self, observation: Observation) -> Iterable[Pair]:
        values = {**observation.fields.get("unique", {}),
                  **observation.fields.get("captured", {})}
        steps = {step.name: step for step in self.steps}
        for record in observation.fields.get("steps", []):
            yield from step_pairs(steps[record["name"]], record, values)


# ---------------------------------------------------------------- validation helpers
def _duplicate_names(steps: list[FlowStep]) -> list[str]:
    names = [step.name for step in steps]
    return [f"step name {name!r} is used twice; step names must differ"
            for name in sorted({n for n in names if names.count(n) > 1})]


def _unknown_placeholders(steps: list[FlowStep]) -> list[str]:
    problems, known = [], set(UNIQUE)
    for step in steps:
        for name in sorted(placeholders(step) - known):
            captured = sorted(known - set(UNIQUE))
            problems.append(f"step {step.name!r} uses {{{name}}} but no earlier step captures "
                            f"it (captured before it: {', '.join(captured) or 'nothing'}; "
                            "always known: {run_id}, {uuid})")
        known |= set(step.capture)
    return problems


def placeholders(step: FlowStep) -> set[str]:
    """The ``{name}`` placeholders a step's request and conditions use."""
    request = step.request
    texts = [request.path, *request.params.values(), *(v or "" for v in request.headers.values()),
             request.body or "", *_strings(request.json_body)]
    for block in (step.expect, step.until):
        if block is not None:
            texts += [c.text for c in _conditions(block)]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _conditions(block: HttpExpect) -> list[Condition]:
    singles = [block.status, block.latency_ms, block.body]
    return [c for c in singles if c is not None] + [*block.headers.values(),
                                                     *block.json_fields.values()]


def step_budget(step: FlowStep, target_timeout: float) -> float:
    """Seconds one step may take: its request timeout, plus the poll window when polled."""
    timeout = step.request.timeout or target_timeout
    return timeout + (step.polling.within if step.until is not None else 0.0)


# ---------------------------------------------------------------- judgement
def step_pairs(step: FlowStep, record: dict[str, Any],
               captured: dict[str, Any]) -> Iterator[Pair]:
    """The pairs of one step that ran, labelled ``step: what``."""
    fields = record["fields"]
    if step.until is not None:
        suffix = poll_summary(record["polls"], record["seconds"])
        for pair in http_pairs(step.until, fields):
            condition = fill_condition(pair.condition, captured)
            yield pair._replace(label=f"{step.name}: {pair.label}",
                                condition=replace(condition, text=f"{condition.text} {suffix}"))
    if step.checks is not None:
        for pair in http_pairs(step.checks, fields):
            yield pair._replace(label=f"{step.name}: {pair.label}",
                                condition=fill_condition(pair.condition, captured))


def poll_summary(polls: int, seconds: float) -> str:
    """``after 30s, 58 polls``."""
    return f"after {round(seconds, 1):g}s, {polls} poll{'' if polls == 1 else 's'}"


def fill_condition(condition: Condition, captured: dict[str, Any]) -> Condition:
    """``== {effects}`` with the captured value written in (as a YAML/JSON scalar); inside a
    longer word (``== smoke+{uuid}@example.test``) as plain text."""
    if not captured or not PLACEHOLDER.search(condition.text):
        return condition

    def value(match: re.Match[str]) -> str:
        name, text = match.group(1), match.string
        if name not in captured:
            return match.group(0)
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end()] if match.end() < len(text) else " "
        if before in _APART and after in _APART:
            return json.dumps(captured[name])
        return str(captured[name])

    return Condition.parse(PLACEHOLDER.sub(value, condition.text))


_APART = frozenset(" \t[],")


def holds(pairs: Iterable[Pair]) -> bool:
    """Whether every pair's condition is true (a value that cannot be judged is not)."""
    for pair in pairs:
        if pair.value is MISSING:
            return False
        try:
            if not pair.condition.check(pair.value):
                return False
        except Unmeasurable:
            return False
    return True


# ---------------------------------------------------------------- measuring
class TargetSession:
    """One check's own HTTP client for one target: its own cookie jar, the target's headers.

    Made like the run's shared clients (``make_http_client``); each request holds one slot of
    the target while it is sent, so the target's concurrency bound still holds.
    """

    def __init__(self, ctx: Context, target: str | None):
        from opsgate.probes.http import make_http_client

        self.ctx = ctx
        self.name = ctx.targets.http_name(target)
        self.config = ctx.targets.http[self.name]
        self.client = make_http_client(verify=self.config.verify_tls, keep_cookies=True)

    def __enter__(self) -> TargetSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def timeout(self, request: HttpRequest) -> float:
        return request.timeout or self.config.timeout

    def build(self, request: HttpRequest, values: dict[str, Any] | None = None) -> Any:
        """The httpx request, ``{name}`` filled (a JSON string that is only ``{name}`` keeps
        the captured value's type)."""
        from opsgate.probes.http import build_request

        if values and request.json_body is not None:
            request = request.model_copy(
                update={"json_body": _typed_fill(request.json_body, values)})
        return build_request(self.client, self.config.base_url, request, self.config.headers,
                             values)

    def slot(self, count: int = 1) -> AbstractContextManager[None]:
        """``count`` of the target's concurrency slots (two for requests sent together)."""
        return self.ctx.runner.slots(self.ctx.env, f"http:{self.name}", self.config.concurrency,
                                     count)

    def send(self, built: Any, seconds: float, *, hold_slot: bool = True) -> Observation:
        """Send a built request within ``seconds`` (and the check's budget), in a slot unless
        the caller holds one already."""
        from opsgate.probes.http import probe_http

        with self.slot() if hold_slot else nullcontext():
            return probe_http(self.client, built, self.ctx.deadline(seconds),
                              retries=self.config.retries)


def _typed_fill(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        return values[whole.group(1)] if whole and whole.group(1) in values else template
    if isinstance(template, dict):
        return {key: _typed_fill(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [_typed_fill(item, values) for item in template]
    return template


class FlowRun:
    """One run of a flow: its steps in order, what each asked and saw, the captured values."""

    def __init__(self, check: FlowCheck, ctx: Context):
        self.check, self.ctx = check, ctx
        self.unique = {"run_id": ctx.runner.run_id, "uuid": str(uuid.uuid4())}
        self.captured: dict[str, Any] = {}
        self.signatures: list[str] = []
        self.records: list[dict[str, Any]] = []
        self.asked: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []
        self.not_run: list[dict[str, str]] = []

    def run(self) -> Observation:
        started = utcnow()
        budget = self.check.budget(self.ctx.targets)
        overall = self.ctx.begin(budget)
        with TargetSession(self.ctx, self.check.target) as session:
            for index, step in enumerate(self.check.steps):
                if overall.expired:
                    raise self._error(ProbeTimeout(
                        f"step {step.name!r}: the check's budget of {format_duration(budget)} "
                        "ran out before this step"), index)
                if not self._step(session, index, overall):
                    self._skip_from(index + 1, f"not run: step {step.name!r} did not pass")
                    break
            asked = {"target": session.name, "base_url": session.config.base_url,
                     "steps": self.asked}
        return Observation("flow", asked, self._seen(),
                           {"steps": self.records, "captured": dict(self.captured),
                            "unique": self.unique, "secrets": self.secrets()},
                           started_at=started, finished_at=utcnow())

    def secrets(self) -> list[str]:
        """Captured values that are secrets (a token from a login), for the run's redactor."""
        hidden = self.check.secret_captures
        return [*(str(value) for name, value in self.captured.items() if name in hidden),
                *self.signatures]

    @property
    def values(self) -> dict[str, Any]:
        """What fills ``{name}``: ``{run_id}``, ``{uuid}`` and the values captured so far."""
        return {**self.unique, **self.captured}

    def _step(self, session: TargetSession, index: int, overall: Deadline) -> bool:
        """Run step ``index``; whether it passed. ProbeError when it could not be measured."""
        step = self.check.steps[index]
        self.ctx.progress(f"step {step.name}")
        polls = None
        try:
            if step.until is None:
                observation = session.send(session.build(step.request, self.values),
                                           session.timeout(step.request))
            else:
                observation, polls = self._poll(session, step, overall)
        except ProbeError as exc:
            self.signatures += getattr(exc, "secrets", [])
            self.asked.append({"step": step.name, **exc.asked})
            self.seen.append({"step": step.name, "error": str(exc), **exc.seen})
            raise self._error(exc, index + 1, f"step {step.name!r}: {exc}") from exc
        self.signatures += observation.fields.get("secrets", [])
        record = {"name": step.name, "fields": observation.fields,
                  "polls": polls.count if polls else None,
                  "seconds": polls.seconds if polls else None}
        self.records.append(record)
        ok = holds(step_pairs(step, record, self.values))
        self.asked.append({"step": step.name, **observation.asked})
        self.seen.append({"step": step.name, "passed": ok, **observation.seen,
                          **({"polls": polls.evidence()} if polls else {})})
        if ok:
            self._capture(step, index, observation)
        return ok

    def _poll(self, session: TargetSession, step: FlowStep,
              overall: Deadline) -> tuple[Observation, PollLog]:
        """Send the step until ``until`` holds, ``within`` passes or the budget runs out."""
        assert step.until is not None
        log = PollLog(step.polling)
        last: Observation | None = None
        while True:
            try:
                last = session.send(session.build(step.request, self.values),
                                    min(session.timeout(step.request), log.window.remaining()))
            except ProbeTimeout:
                if last is None or not (log.window.expired or overall.expired):
                    raise
                log.stopped = "the request was cut at the end of the window"
                break
            log.add(_answer(last.fields, step.until))
            if holds(fill_pairs(http_pairs(step.until, last.fields), self.values)):
                log.stopped = "until held"
                break
            self.ctx.progress(f"step {step.name}: poll {log.count}, "
                              f"{log.window.remaining():.0f}s left")
            if not log.wait(overall):
                break
        return last, log

    def _capture(self, step: FlowStep, index: int, observation: Observation) -> None:
        from opsgate.kinds.http import json_field

        for name, expression in step.capture.items():
            value = json_field(observation.fields.get("json"), expression)
            if value is MISSING or value is None:
                what = "the response has no JSON body" if value is MISSING else "found nothing"
                raise self._error(NoData(f"step {step.name!r}: capture {name} "
                                         f"({expression!r}): {what}"), index + 1)
            self.captured[name] = value
            self.seen[-1].setdefault("captured", {})[name] = value

    def _skip_from(self, start: int, why: str) -> None:
        self.not_run = [{"step": step.name, "why": why} for step in self.check.steps[start:]]

    def _seen(self) -> dict[str, Any]:
        seen: dict[str, Any] = {"steps": self.seen, "captured": dict(self.captured),
                                "unique": self.unique}
        if self.not_run:
            seen["not_run"] = self.not_run
        return seen

    def _error(self, exc: ProbeError, first_not_run: int,
               message: str | None = None) -> ProbeError:
        """``exc`` (same class) carrying the whole flow's evidence so far."""
        self._skip_from(first_not_run, "not run: the flow stopped with an error")
        error = type(exc)(message or str(exc), asked={"steps": self.asked}, seen=self._seen())
        error.secrets = self.secrets()  # type: ignore[attr-defined]
        return error


class PollLog:
    """The polls of one step: how many, for how long, and a run-length summary of answers."""

    def __init__(self, poll: Poll):
        self.poll = poll
        self.window = Deadline(poll.within)
        self.count = 0
        self.answers: list[dict[str, Any]] = []
        self.stopped = "within passed"

    @property
    def seconds(self) -> float:
        return round(self.window.elapsed(), 3)

    def add(self, answer: dict[str, Any]) -> None:
        """One more poll; equal answers in a row are counted, not repeated (first kept)."""
        self.count += 1
        if self.answers and self.answers[-1]["saw"] == answer:
            self.answers[-1]["times"] += 1
            return
        if len(self.answers) >= HISTORY:
            del self.answers[1]
        self.answers.append({"poll": self.count, "saw": answer, "times": 1})

    def wait(self, overall: Deadline) -> bool:
        """Sleep until the next poll; False when the window or the budget leaves no room."""
        pause = min(self.poll.every, self.window.remaining())
        if overall.remaining() <= pause:
            self.stopped = "the check's budget ran out"
            return False
        if pause <= 0:
            return False
        time.sleep(pause)
        return not self.window.expired

    def evidence(self) -> dict[str, Any]:
        return {"count": self.count, "seconds": self.seconds, "every": self.poll.every,
                "within": self.poll.within, "stopped": self.stopped, "answers": self.answers}


def fill_pairs(pairs: Iterable[Pair], captured: dict[str, Any]) -> Iterator[Pair]:
    """``pairs`` with captured values written into their conditions."""
    for pair in pairs:
        yield pair._replace(condition=fill_condition(pair.condition, captured))


def _answer(fields: dict[str, Any], until: HttpExpect) -> dict[str, Any]:
    """What one poll saw of the ``until`` block: ``{"status": 200, "json status": "running"}``."""
    answer: dict[str, Any] = {"status": fields.get("status")}
    for pair in http_pairs(until, fields):
        answer[pair.label] = None if pair.value is MISSING else pair.value
    return answer


MODEL = FlowCheck
