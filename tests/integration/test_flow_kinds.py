"""``kind: flow`` and ``kind: idempotency`` end to end, against a real server in a thread.

The server below is this module's own small system (login, jobs, webhooks, outbox replay,
orders, payments behind an Idempotency-Key). A base URL under ``/faults/<a,b>/`` serves the
same routes with those faults switched on, so one server covers the healthy and every broken
case. Runs go through the plugin (``pytester``) and are read back from evidence.json; the
hypothesis test drives the idempotency kind's measuring code directly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import shutil
import socket
import string
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from opsgate.config.loader import load_environment
from opsgate.errors import ConfigError
from opsgate.evaluate import evaluate
from opsgate.runner import CheckCase, ProbeRunner

REPO = Path(__file__).resolve().parents[2]
CRON_SECRET = "flow-cron-S3cret"
PASSWORD = "smoke-pa55word"

Answer = tuple[int, dict[str, Any]]


# ---------------------------------------------------------------- the system under test
class System:
    """A small system with the behaviours the flows check; ``faults`` break one each."""

    URLS = Map([
        Rule("/auth/login", endpoint="login", methods=["POST"]),
        Rule("/api/me", endpoint="me"),
        Rule("/api/jobs", endpoint="create_job", methods=["POST"]),
        Rule("/api/jobs/<int:job>", endpoint="job"),
        Rule("/webhooks/checkout", endpoint="webhook", methods=["POST"]),
        Rule("/api/ops/webhook-events/<event>", endpoint="webhook_event"),
        Rule("/internal/outbox/replay", endpoint="replay", methods=["POST"]),
        Rule("/api/orders", endpoint="order", methods=["POST"]),
        Rule("/api/orders/count", endpoint="count_orders"),
        Rule("/api/payments", endpoint="pay", methods=["POST"]),
    ])

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.sessions: dict[str, str] = {}
        self.jobs: dict[int, float] = {}
        self.events: dict[str, float] = {}
        self.effects: Counter[str] = Counter()
        self.orders = 0
        self.keys: dict[str, dict[str, Any]] = {}
        self.key_header = "Idempotency-Key"
        self.charges = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        faults: set[str] = set()
        match = re.match(r"^/faults/([a-z_,]+)(/.*)$", request.path)
        if match:
            faults, environ["PATH_INFO"] = set(match.group(1).split(",")), match.group(2)
            request = Request(environ)
        try:
            endpoint, args = self.URLS.bind_to_environ(environ).match()
            response = getattr(self, endpoint)(request, faults, **args)
        except HTTPException as exc:
            response = exc.get_response()
        if isinstance(response, tuple):
            response = _json(*response)
        return response(environ, start_response)

    # -- F1: login sets a refresh cookie (HttpOnly, Secure) and a session cookie
    def login(self, request: Request, faults: set[str]) -> Response | Answer:
        body = request.get_json(silent=True) or {}
        if body.get("password") != PASSWORD:
            return 401, {"error": "bad_credentials"}
        token = secrets.token_hex(12)
        self.sessions[token] = body.get("user", "")
        response = _json(200, {"access_token": token, "user": body.get("user")})
        secure = "insecure_cookie" not in faults
        response.set_cookie("refresh_token", "r" + token, httponly=secure, secure=secure,
                            samesite="Strict")
        response.set_cookie("sid", token, httponly=True, samesite="Lax")
        return response

    def me(self, request: Request, faults: set[str]) -> Answer:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.sessions or request.cookies.get("sid") != token:
            return 401, {"error": "not_logged_in"}
        return 200, {"user": self.sessions[token]}

    # -- F2: a job goes queued -> running -> succeeded in about half a second
    def create_job(self, request: Request, faults: set[str]) -> Answer:
        if "jobs_down" in faults:
            return 500, {"error": "queue unavailable"}
        with self.lock:
            job = next(self.ids)
            self.jobs[job] = time.monotonic()
        if "job_no_id" in faults:
            return 202, {"job": {"status": "queued"}}
        return 202, {"id": job, "status": "queued"}

    def job(self, request: Request, faults: set[str], job: int) -> Answer:
        if job not in self.jobs:
            raise NotFound()
        age = time.monotonic() - self.jobs[job]
        status = "queued" if age < 0.2 else "running"
        if age >= 0.5 and "job_stuck" not in faults:
            status = "succeeded"
        return 200, {"id": job, "status": status}

    # -- F3: a delivered webhook is processed (or fails) after a moment
    def webhook(self, request: Request, faults: set[str]) -> Answer:
        with self.lock:
            event = f"evt_{next(self.ids)}"
            self.events[event] = time.monotonic()
        return 202, {"id": event}

    def webhook_event(self, request: Request, faults: set[str], event: str) -> Answer:
        if event not in self.events:
            raise NotFound()
        if time.monotonic() - self.events[event] < 0.3:
            return 200, {"id": event, "status": "received"}
        return 200, {"id": event,
                     "status": "failed" if "webhook_failed" in faults else "processed"}

    # -- Q7: replaying an event applies its effect once
    def replay(self, request: Request, faults: set[str]) -> Answer:
        if request.headers.get("X-Cron-Secret") != CRON_SECRET:
            return 401, {"error": "unauthorized"}
        event = (request.get_json(silent=True) or {}).get("event_id", "")
        with self.lock:
            applied = self.effects[event] == 0 or "replay_not_idempotent" in faults
            self.effects[event] += applied
            return 200, {"eventId": event, "applied": applied, "effects": self.effects[event]}

    # -- H5: an order without a tenant is refused and changes nothing
    def order(self, request: Request, faults: set[str]) -> Answer:
        refused = not request.headers.get("X-Tenant-Id") and "tenant_optional" not in faults
        if not refused or "tenant_side_effect" in faults:
            with self.lock:
                self.orders += 1
        return (400, {"error": "tenant_required"}) if refused else (201, {"created": True})

    def count_orders(self, request: Request, faults: set[str]) -> Answer:
        return 200, {"count": self.orders}

    # -- F4: payments behind an idempotency key
    def pay(self, request: Request, faults: set[str]) -> Answer:
        key, body = request.headers.get(self.key_header), request.get_json(silent=True)
        if not key or not isinstance(body, dict):
            return 400, {"error": "key and JSON object required"}
        if "ignore_keys" in faults:
            return self._charge(body)
        digest = _digest(body)
        with self.lock:
            refusal = self._claim(key, digest, faults)
        if refusal is not None:
            return refusal
        answer = self._charge(body)
        with self.lock:
            self.keys[key] = {"digest": digest, "answer": answer}
        return answer

    def _claim(self, key: str, digest: str, faults: set[str]) -> Answer | None:
        """None when this request may charge; otherwise the answer to give instead."""
        entry = self.keys.get(key)
        if entry is not None and entry["digest"] != digest:
            if "conflict_accepted" not in faults:
                return 422, {"error": "idempotency_key_reused"}
        elif entry is not None and "answer" in entry:
            if "replay_new_charge" not in faults:
                return entry["answer"]
        elif entry is not None and "no_in_flight_lock" not in faults:
            return 409, {"error": "idempotency_key_in_flight"}
        self.keys[key] = {"digest": digest}
        return None

    def _charge(self, body: dict[str, Any]) -> Answer:
        delay = body.get("delay_ms")
        if isinstance(delay, int) and not isinstance(delay, bool):
            time.sleep(min(delay, 5000) / 1000)
        with self.lock:
            self.charges += 1
            payment = f"pay_{next(self.ids)}"
        return 201, {"id": payment, "status": "captured", "amount": body.get("amount")}


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _digest(body: dict[str, Any]) -> str:
    canonical = {k: v for k, v in body.items() if k != "delay_ms"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def system() -> Iterator[tuple[System, str]]:
    """The system served on loopback for the whole module: (its state, its base URL)."""
    app = System()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def base(system: tuple[System, str]) -> str:
    return system[1]


def faulty(base: str, *faults: str) -> str:
    return f"{base}/faults/{','.join(faults)}"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the checks
F1 = """\
  - id: F1
    title: Login returns a session; refresh cookie is HttpOnly and Secure
    kind: flow
    mutating: true
    steps:
      - name: login
        request: {method: POST, path: /auth/login, json: {user: smoke, password: "${SMOKE_PW}"}}
        expect:
          status: "== 200"
          cookies: {refresh_token: {httponly: true, secure: true}}
        capture: {access_token: access_token}
      - name: me
        request: {path: /api/me, headers: {Authorization: "Bearer {access_token}"}}
        expect: {status: "== 200", json: {user: "== smoke"}}
"""
F2 = """\
  - id: F2
    title: Job created, then succeeded within 1.5 s
    kind: flow
    mutating: true
    steps:
      - name: create
        request: {method: POST, path: /api/jobs, json: {type: smoke}}
        expect: {status: "in [200, 201, 202]"}
        capture: {job_id: id}
      - name: succeeded
        request: {path: "/api/jobs/{job_id}"}
        until: {json: {status: "== succeeded"}}
        poll: {every: 100ms, within: 1500ms}
"""
F3 = """\
  - id: F3
    title: Checkout webhook processed
    kind: flow
    mutating: true
    steps:
      - name: deliver
        request: {method: POST, path: /webhooks/checkout, json: {type: checkout.completed}}
        expect: {status: "== 202"}
        capture: {event: id}
      - name: processed
        request: {path: "/api/ops/webhook-events/{event}"}
        until: {json: {status: "in [processed, failed]"}}
        poll: {every: 100ms, within: 3s}
        expect: {json: {status: "== processed"}}
"""
Q7 = """\
  - id: Q7
    title: Replaying one event twice has one effect
    kind: flow
    mutating: true
    steps:
      - name: replay
        request: {method: POST, path: /internal/outbox/replay, json: {event_id: EVENT}}
        capture: {effects: effects}
      - name: replay again
        request: {method: POST, path: /internal/outbox/replay, json: {event_id: EVENT}}
        expect: {status: "== 200", json: {effects: "== {effects}", applied: "== false"}}
"""
H5 = """\
  - id: H5
    title: An order without a tenant is refused and changes nothing
    kind: flow
    mutating: true
    steps:
      - name: before
        request: {path: /api/orders/count}
        capture: {orders: count}
      - name: no tenant
        request: {method: POST, path: /api/orders, json: {item: smoke}}
        expect: {status: "in [400, 403, 422]"}
      - name: after
        request: {path: /api/orders/count}
        expect: {json: {count: "== {orders}"}}
"""
F4 = """\
  - id: F4
    title: Idempotency-Key semantics of payments
    kind: idempotency
    mutating: true
    request: {method: POST, path: /api/payments, json: {amount: 1500, currency: BRL}}
    key_header: Idempotency-Key
    other_json: {amount: 1600, currency: BRL}
    expect:
      replay: same_response
      conflict: "in [400, 409, 422]"
      in_flight: "== 409"
    in_flight_json: {amount: 1500, currency: BRL, delay_ms: 300}
"""


def q7(event: str) -> str:
    """Q7 for one event (each run replays an event of its own)."""
    return Q7.replace("EVENT", event)


# ---------------------------------------------------------------- running the gate
@pytest.fixture
def gate(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Run the catalog over an environment with ``checks`` against ``base_url``."""
    shutil.copytree(REPO / "checks", pytester.path / "checks")
    monkeypatch.setenv("SMOKE_PW", PASSWORD)
    monkeypatch.setenv("OPSGATE_FLOW_SECRET", CRON_SECRET)
    runs = itertools.count(1)

    def run(base_url: str, checks: str, *, allow_mutations: bool = True,
            more: dict[str, str] | None = None) -> dict[str, Any]:
        number = next(runs)
        env = pytester.path / f"env{number}.yaml"
        env.write_text(environment_yaml(base_url, checks, more))
        out = pytester.path / f"out{number}"
        args = ["checks", "--env", str(env), "--report-dir", str(out),
                "-p", "no:hypothesispytest"]  # its import adds ~1 s to every run
        result = pytester.runpytest_subprocess(
            *args, *(["--allow-mutations"] if allow_mutations else []))
        (directory,) = out.iterdir()
        document = json.loads((directory / "evidence.json").read_text())
        document["exit"] = result.ret
        document["stdout"] = result.stdout.str()
        return document

    return run


def environment_yaml(base_url: str, checks: str, more: dict[str, str] | None = None) -> str:
    """An environment with target ``api`` at ``base_url`` (and ``more`` targets by name)."""
    targets = "".join(f"""\
    {name}:
      base_url: {url}
      headers: {{X-Cron-Secret: "${{OPSGATE_FLOW_SECRET}}"}}
      timeout: 2s
""" for name, url in {"api": base_url, **(more or {})}.items())
    return f"name: flows\ntargets:\n  http:\n{targets}checks:\n{checks}"


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["id"]: check for check in document["checks"]}


def steps_seen(check: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in check["evidence"]["seen"]["steps"]}


# ---------------------------------------------------------------- flows end to end
def test_every_flow_passes_against_a_healthy_system(gate, base):
    document = gate(base, F1 + F2 + F3 + q7("evt-ok") + H5 + F4)
    checks = by_id(document)
    assert document["exit"] == 0, document["stdout"]
    assert document["verdict"] == "PASS"
    assert {c["outcome"] for c in checks.values()} == {"passed"}
    login = steps_seen(checks["F1"])["login"]
    assert login["passed"] and login["captured"]["access_token"] == "[REDACTED]"
    assert PASSWORD not in json.dumps(document)
    polls = steps_seen(checks["F2"])["succeeded"]["polls"]
    assert polls["stopped"] == "until held" and polls["count"] >= 2
    assert polls["answers"][-1]["saw"]["json status"] == "succeeded"
    assert "succeeded: json status (\"succeeded\") == succeeded after" in checks["F2"]["message"]
    assert checks["F2"]["evidence"]["seen"]["captured"]["job_id"] >= 1
    assert "replay again: json effects (1) == 1" in checks["Q7"]["message"]


def test_login_cookie_without_httponly_and_secure_fails(gate, base):
    check = by_id(gate(faulty(base, "insecure_cookie"), F1))["F1"]
    assert check["outcome"] == "failed"
    assert "login: cookie refresh_token httponly (false) == true" in check["message"]
    assert "login: cookie refresh_token secure (false) == true" in check["message"]
    assert check["evidence"]["seen"]["not_run"] == [
        {"step": "me", "why": "not run: step 'login' did not pass"}]


def test_job_stuck_in_running_fails_after_within(gate, base):
    document = gate(faulty(base, "job_stuck"), F2)
    check = by_id(document)["F2"]
    assert document["exit"] == 1 and document["verdict"] == "BLOCKED"
    assert check["outcome"] == "failed"
    assert re.fullmatch(r'succeeded: json status \("running"\) == succeeded after '
                        r"(1\.[5-9]|[2-9](\.\d)?)s, \d+ polls", check["message"]), check["message"]
    polls = steps_seen(check)["succeeded"]["polls"]
    # polled until within passed: at least queued, then running (how many depends on load)
    assert polls["stopped"] == "within passed" and polls["count"] >= 2
    assert [a["saw"]["json status"] for a in polls["answers"]] == ["queued", "running"]


def test_failed_step_stops_the_flow_and_says_so(gate, base):
    check = by_id(gate(faulty(base, "jobs_down"), F2))["F2"]
    assert check["outcome"] == "failed"
    assert check["message"] == "create: status (500) in [200, 201, 202]"
    assert check["evidence"]["seen"]["not_run"] == [
        {"step": "succeeded", "why": "not run: step 'create' did not pass"}]
    assert "queue unavailable" in steps_seen(check)["create"]["body_excerpt"]


def test_capture_that_finds_nothing_is_an_error(gate, base):
    check = by_id(gate(faulty(base, "job_no_id"), F2))["F2"]
    assert check["outcome"] == "error"
    assert check["message"] == "step 'create': capture job_id ('id'): found nothing"
    assert check["evidence"]["seen"]["not_run"][0]["step"] == "succeeded"


def test_webhook_that_fails_processing_fails(gate, base):
    check = by_id(gate(faulty(base, "webhook_failed"), F3))["F3"]
    assert check["outcome"] == "failed"
    assert check["message"] == 'processed: json status ("failed") == processed'
    assert steps_seen(check)["processed"]["polls"]["stopped"] == "until held"


def test_replay_with_two_effects_fails(gate, base):
    check = by_id(gate(faulty(base, "replay_not_idempotent"), q7("evt-dup")))["Q7"]
    assert check["outcome"] == "failed"
    assert "replay again: json effects (2) == 1" in check["message"]
    assert "replay again: json applied (true) == false" in check["message"]


def test_order_without_tenant_accepted_or_with_a_side_effect_fails(gate, base):
    faults = ("tenant_optional", "tenant_side_effect")
    checks = "".join(H5.replace("id: H5", f"id: H5-{fault}").replace(
        "kind: flow", f"kind: flow\n    target: {fault}") for fault in faults)
    checks = by_id(gate(base, checks, more={fault: faulty(base, fault) for fault in faults}))
    accepted, side_effect = (checks[f"H5-{fault}"] for fault in faults)
    assert accepted["outcome"] == side_effect["outcome"] == "failed"
    assert accepted["message"] == "no tenant: status (201) in [400, 403, 422]"
    assert re.fullmatch(r"after: json count \((\d+)\) == (\d+)", side_effect["message"])
    assert steps_seen(side_effect)["no tenant"]["status"] == 400


def test_unreachable_server_is_an_error(gate):
    document = gate(f"http://127.0.0.1:{closed_port()}", F2 + F4)
    checks = by_id(document)
    assert document["verdict"] == "BLOCKED"
    assert checks["F2"]["outcome"] == "error" and checks["F4"]["outcome"] == "error"
    assert checks["F2"]["message"].startswith("step 'create': could not connect to")
    assert checks["F4"]["message"].startswith("first request: could not connect to")
    assert steps_seen(checks["F2"])["create"]["error"]


def test_mutating_flows_do_not_run_without_allow_mutations(gate, base, system):
    app, _ = system
    charges = app.charges
    document = gate(base, F2 + F4, allow_mutations=False)
    checks = by_id(document)
    assert document["exit"] == 1 and document["verdict"] == "BLOCKED"
    assert {c["outcome"] for c in checks.values()} == {"not_run"}
    assert "--allow-mutations" in checks["F4"]["message"]
    assert app.charges == charges


# ---------------------------------------------------------------- idempotency end to end
BROKEN_IDEMPOTENCY = {  # fault -> the one judgement that must fail, and name it
    "replay_new_charge": 'replay: json id ("pay_',
    "conflict_accepted": "conflict: status (201) in [400, 409, 422]",
    "no_in_flight_lock": "in_flight: concurrent status (201) == 409",
}


def test_idempotency_broken_in_each_way_fails_naming_which(gate, base):
    checks = "".join(F4.replace("id: F4", f"id: F4-{fault}").replace(
        "kind: idempotency", f"kind: idempotency\n    target: {fault}")
        for fault in BROKEN_IDEMPOTENCY)
    document = gate(base, checks, more={fault: faulty(base, fault)
                                        for fault in BROKEN_IDEMPOTENCY})
    for fault, broken in BROKEN_IDEMPOTENCY.items():
        check = by_id(document)[f"F4-{fault}"]
        assert check["outcome"] == "failed", check
        assert broken in check["message"] and ";" not in check["message"], check["message"]
        assert check["evidence"]["seen"]["in_flight"]["overlapped"] is True
        assert check["evidence"]["asked"]["first"]["headers"]["Idempotency-Key"] == "[REDACTED]"


def test_idempotency_passes_and_keeps_the_key_out_of_messages(gate, base, system):
    app, _ = system
    document = gate(base, F4)
    check = by_id(document)["F4"]
    assert check["outcome"] == "passed", check["message"]
    said = json.dumps([check["message"], check["judgements"], document["stdout"]])
    assert not [key for key in app.keys if key in said]
    for name in ("first", "replay", "conflict"):
        assert check["evidence"]["seen"][name]["status"] in (201, 422)
    assert "in_flight: concurrent status (409) == 409" in check["message"]


# ---------------------------------------------------------------- validation and isolation
def load(tmp_path: Path, base_url: str, checks: str, environ: dict[str, str] | None = None):
    path = tmp_path / "env.yaml"
    path.write_text(environment_yaml(base_url, checks))
    return load_environment(path, environ={"OPSGATE_FLOW_SECRET": CRON_SECRET,
                                           "SMOKE_PW": PASSWORD, **(environ or {})})


@pytest.mark.parametrize(("checks", "problem"), [
    (F2.replace("    mutating: true\n", ""), r"step 'create' \(POST\) can change state: mark"),
    (F2.replace("{job_id: id}", "{job-id: id}"), r"capture name 'job-id': use letters, digits"),
    (F2.replace("{job_id}", "{job}"), r"step 'succeeded' uses \{job\} but no earlier step"),
    (F2.replace("until: {json: {status: \"== succeeded\"}}", "expect: {status: '== 200'}"),
     r"'poll' needs an 'until' block"),
    (F4.replace("    mutating: true\n", ""), r"mark it 'mutating: true'"),
    (F4.replace("amount: 1600", "amount: 1500"), r"other_json equals request.json"),
    (F4.replace("compare", "x") + "    compare: ['a[']\n", r"not a JMESPath expression"),
])
def test_invalid_flow_configuration_is_one_clear_problem(tmp_path, checks, problem):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, "http://127.0.0.1:9", checks)
    assert any(re.search(problem, p) for p in caught.value.problems), caught.value.problems


def observe_all(env) -> dict[str, tuple[Any, Any]]:
    """Each check of ``env`` measured (one after the other) and judged: id -> (obs, outcome)."""
    runner = ProbeRunner("direct")
    try:
        results = {}
        for check in env.environment.checks:
            observation = runner.observe(CheckCase(env, check))
            results[check.id] = (observation, evaluate(check, observation))
        return results
    finally:
        runner.close()


def test_cookies_stay_within_one_flow_run_and_tokens_are_marked_secret(tmp_path, base):
    me_alone = """\
  - id: ME
    title: without a login of its own, /api/me refuses
    kind: flow
    steps:
      - {name: me, request: {path: /api/me}, expect: {status: "== 401"}}
"""
    results = observe_all(load(tmp_path, base, F1 + me_alone))
    login, outcome = results["F1"]
    assert outcome.status == "passed", outcome.message
    assert results["ME"][1].status == "passed", results["ME"][1].message
    assert login.fields["secrets"] == [login.fields["captured"]["access_token"]]


def test_polling_stops_at_the_checks_budget(tmp_path, base):
    slow = F2.replace("within: 1500ms", "within: 30s").replace(
        "    mutating: true\n", "    mutating: true\n    timeout: 1s\n")
    started = time.monotonic()
    observation, outcome = observe_all(load(tmp_path, faulty(base, "job_stuck"), slow))["F2"]
    assert time.monotonic() - started < 2
    assert outcome.status == "failed"
    assert re.fullmatch(r'succeeded: json status \("running"\) == succeeded after '
                        r"(0\.\d|1)s, \d+ polls", outcome.message), outcome.message
    (_, polled) = observation.seen["steps"]
    assert polled["polls"]["stopped"] == "the check's budget ran out"


# ---------------------------------------------------------------- property: idempotency
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_.:/é€", max_size=12)
_SCALARS = st.none() | st.booleans() | st.integers(-10**9, 10**9) | _TEXT
_BODIES = st.dictionaries(
    _TEXT.filter(lambda key: key != "delay_ms"),
    st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8),
    max_size=5)


def idempotency_check(body: dict[str, Any], other: dict[str, Any], key_header: str,
                      compare: list[str] | None, in_flight: bool) -> dict[str, Any]:
    check: dict[str, Any] = {
        "id": "F4", "title": "generated", "kind": "idempotency", "mutating": True,
        "request": {"method": "POST", "path": "/api/payments", "json": body},
        "key_header": key_header, "other_json": other}
    if compare is not None:
        check["compare"] = compare
    if in_flight:
        check["expect"] = {"in_flight": "== 409"}
        check["in_flight_json"] = {**body, "delay_ms": 150}
    return check


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODIES, other=_BODIES, key_header=st.sampled_from(
           ["Idempotency-Key", "X-Idempotency-Key", "Idempotency-Token"]),
       compare=st.sampled_from([None, ["id"], ["id", "status"]]), in_flight=st.booleans())
def test_idempotency_kind_judges_generated_payloads(tmp_path_factory, system, body, other,
                                                     key_header, compare, in_flight):
    assume(other != body)
    app, base_url = system
    app.key_header = key_header
    check = idempotency_check(body, other, key_header, compare, in_flight)
    outcomes = {}
    for name, url in (("correct", base_url), ("ignores keys", faulty(base_url, "ignore_keys"))):
        path = tmp_path_factory.mktemp("env") / "env.yaml"
        path.write_text(yaml.safe_dump({"name": "generated", "targets": {"http": {"api": {
            "base_url": url, "timeout": "2s"}}}, "checks": [check]}, allow_unicode=True))
        env = load_environment(path, environ={})
        runner = ProbeRunner("property")
        try:
            configured = env.environment.checks[0]
            observation = runner.observe(CheckCase(env, configured))
            outcomes[name] = evaluate(configured, observation)
        finally:
            runner.close()
    assert outcomes["correct"].status == "passed", outcomes["correct"].message
    assert outcomes["ignores keys"].status == "failed", outcomes["ignores keys"].message
    assert "replay: json id" in outcomes["ignores keys"].message
