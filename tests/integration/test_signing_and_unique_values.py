"""Request signing (SigV4, HMAC webhooks), ``{run_id}``/``{uuid}`` in flows, cookie domain/path.

Against real servers: the demo target (its private bucket verifies SigV4 itself, its checkout
webhook verifies a Stripe-style signature, its signup refuses a second user per email) and
small recording servers; botocore, AWS's own signer, checks what httpx-auth signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_auth import AWS4Auth
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from opsgate.config.loader import load_environment
from opsgate.demo.envfile import render
from opsgate.demo.routes.storage import STORAGE_ACCESS_KEY
from opsgate.errors import ConfigError
from opsgate.evaluate import evaluate
from opsgate.runner import CheckCase, ProbeRunner
from tests.support.demo import REPO, SECRET

DEMO_ENV = REPO / "fixtures" / "environments" / "demo.yaml"
WEBHOOK_SECRET = "whsec_test-0123456789"
STORAGE_SECRET = "storage-Secret/key+0123"


# ---------------------------------------------------------------- helpers
def demo_environment(server: Any, folder: Path) -> Any:
    """``fixtures/environments/demo.yaml`` pointed at ``server``."""
    target = folder / f"demo-{server.port}.yaml"
    render(DEMO_ENV, target, api_url=server.url, prometheus_url="http://127.0.0.1:1",
           db_url="sqlite:///unused.sqlite")
    return load_environment(target, {"DEMO_OPS_SECRET": SECRET})


def observe(env: Any, *ids: str, run_id: str = "run-under-test") -> dict[str, tuple[Any, Any]]:
    """The checks ``ids`` of ``env`` measured and judged: id -> (observation, outcome)."""
    runner = ProbeRunner(run_id)
    try:
        results = {}
        for check in env.environment.checks:
            if check.id in ids:
                observation = runner.observe(CheckCase(env, check))
                results[check.id] = (observation, evaluate(check, observation))
        return results
    finally:
        runner.close()


def environment(tmp_path: Path, base_url: str, checks: str,
                environ: dict[str, str] | None = None) -> Any:
    path = tmp_path / "env.yaml"
    path.write_text(f"name: signing\ntargets:\n  http:\n    api:\n      base_url: {base_url}\n"
                    f"      timeout: 5s\nchecks:\n{checks}")
    return load_environment(path, {"WEBHOOK_SECRET": WEBHOOK_SECRET,
                                   "STORAGE_SECRET": STORAGE_SECRET, **(environ or {})})


class Recorder:
    """A real HTTP server that keeps every request (method, path, headers, body) and answers
    with them as JSON; ``status`` answers come first when queued (``slow`` delays them)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.slow = 0.0

        @Request.application
        def app(request: Request) -> Response:
            seen = {"method": request.method, "path": request.path,
                    "headers": dict(request.headers), "body": request.get_data().decode(),
                    "at": time.time()}
            self.requests.append(seen)
            status = self.statuses.pop(0) if self.statuses else 200
            if status != 200:
                time.sleep(self.slow)
            return Response(json.dumps(seen), status=status, content_type="application/json")

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.server.shutdown()


def stripe_valid(header: str, body: bytes, secret: str) -> bool:
    """Stripe's own rule: ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>``."""
    fields = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def botocore_signature(seen: dict[str, Any], url: str, access_key: str, secret_key: str,
                       region: str = "us-east-1") -> str:
    """The SigV4 signature botocore (AWS's SDK) computes for the request a server received."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {key.lower(): value for key, value in seen["headers"].items()}
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    request = AWSRequest(method=seen["method"], url=url + seen["path"],
                         headers={name: headers[name] for name in signed},
                         data=seen["body"].encode())
    request.context["timestamp"] = headers["x-amz-date"]
    auth = S3SigV4Auth(Credentials(access_key, secret_key), "s3", region)
    return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)


# ---------------------------------------------------------------- SigV4
SIGNED_HEAD = """\
  - id: H6
    title: private bucket
    kind: http
    request:
      method: {method}
      path: /storage/demo-uploads
      sign: {{sigv4: {{access_key: AKIDEXAMPLE, secret_key: "${{STORAGE_SECRET}}",
                       region: eu-west-3, service: s3}}}}
"""


def test_sigv4_signature_is_the_one_aws_botocore_computes(tmp_path, recorder):
    env = environment(tmp_path, recorder.url, SIGNED_HEAD.format(method="GET"))
    observation, outcome = observe(env, "H6")["H6"]
    assert outcome.status == "passed", outcome.message
    (seen,) = recorder.requests
    authorization = seen["headers"]["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/s3/aws4_request" in authorization
    expected = botocore_signature(seen, recorder.url, "AKIDEXAMPLE", STORAGE_SECRET, "eu-west-3")
    assert authorization.endswith(f"Signature={expected}")
    other = botocore_signature(seen, recorder.url, "AKIDEXAMPLE", STORAGE_SECRET + "x",
                               "eu-west-3")
    assert not authorization.endswith(other)
    assert observation.seen["attempts"][0]["signed_at"] == seen["headers"]["X-Amz-Date"]
    assert expected in observation.fields["secrets"]  # the run's redactor learns it


def test_demo_bucket_accepts_a_sigv4_head_and_refuses_others(demo_server):
    server = demo_server()
    good = AWS4Auth(STORAGE_ACCESS_KEY, SECRET, "us-east-1", "s3")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        signed = http.head("/storage/demo-uploads", auth=good)
        listed = http.get("/storage/demo-uploads", auth=good)
        unsigned = http.get("/storage/demo-uploads")
        wrong = http.get("/storage/demo-uploads",
                         auth=AWS4Auth(STORAGE_ACCESS_KEY, "not-the-secret", "us-east-1", "s3"))
        unknown_key = http.get("/storage/demo-uploads",
                               auth=AWS4Auth("AKIDOTHER", SECRET, "us-east-1", "s3"))
        other_region = http.head("/storage/demo-uploads",
                                 auth=AWS4Auth(STORAGE_ACCESS_KEY, SECRET, "eu-west-1", "s3"))
        missing = http.get("/storage/no-such-bucket", auth=good)
        tampered = http.build_request("GET", "/storage/demo-uploads")
        next(good.auth_flow(tampered))
        tampered.headers["x-amz-date"] = "20200101T000000Z"
        stale = http.send(tampered)
    assert signed.status_code == 200 and signed.headers["x-amz-bucket-region"] == "us-east-1"
    assert listed.status_code == 200 and "<Name>demo-uploads</Name>" in listed.text
    assert unsigned.status_code == 403 and "<Code>AccessDenied</Code>" in unsigned.text
    assert wrong.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in wrong.text
    assert unknown_key.status_code == 403 and "InvalidAccessKeyId" in unknown_key.text
    assert other_region.status_code == 403
    assert missing.status_code == 404 and "NoSuchBucket" in missing.text
    assert stale.status_code == 403 and "RequestTimeTooSkewed" in stale.text


def test_h6_passes_signed_and_fails_when_storage_is_down(demo_server, tmp_path):
    healthy = observe(demo_environment(demo_server(), tmp_path), "H6")["H6"]
    assert healthy[1].status == "passed", healthy[1].message
    down, outcome = observe(demo_environment(demo_server(faults=("storage_down",)), tmp_path),
                            "H6")["H6"]
    assert outcome.status == "failed" and "status (503) == 200" in outcome.message
    attempts = down.seen["attempts"]  # 503 is retried: every attempt signed afresh
    assert len(attempts) == 3 and all(a["status"] == 503 and a["signed_at"] for a in attempts)


def test_h6_without_signing_is_refused_by_the_private_bucket(demo_server, tmp_path):
    env = environment(tmp_path, demo_server().url, """\
  - {id: H6, title: unsigned, kind: http, request: {method: HEAD, path: /storage/demo-uploads}}
""")
    assert "status (403) == 200" in observe(env, "H6")["H6"][1].message


# ---------------------------------------------------------------- HMAC (Stripe-style)
SIGNED_WEBHOOK = """\
  - id: F3
    title: signed delivery
    kind: http
    mutating: true
    request:
      method: POST
      path: /webhooks/checkout
      json: {id: evt_1, type: checkout.session.completed, note: "café ✓"}
      sign: {hmac_sha256: {secret: "${WEBHOOK_SECRET}"}}
"""


def test_hmac_signature_covers_a_fresh_timestamp_and_the_exact_body(tmp_path, recorder):
    observation, outcome = observe(environment(tmp_path, recorder.url, SIGNED_WEBHOOK),
                                   "F3")["F3"]
    assert outcome.status == "passed", outcome.message
    (seen,) = recorder.requests
    header = seen["headers"]["Stripe-Signature"]
    assert stripe_valid(header, seen["body"].encode(), WEBHOOK_SECRET)
    assert not stripe_valid(header, seen["body"].encode() + b" ", WEBHOOK_SECRET)
    assert not stripe_valid(header, seen["body"].encode(), WEBHOOK_SECRET + "x")
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(stamp - seen["at"]) < 5
    assert observation.asked["headers"]["Stripe-Signature"] == header  # masked when recorded
    assert header in observation.fields["secrets"]


def test_hmac_formats_other_than_stripe(tmp_path, recorder):
    env = environment(tmp_path, recorder.url, """\
  - id: GH
    title: GitHub-style
    kind: http
    mutating: true
    request:
      method: POST
      path: /hooks
      body: '{"zen": "ok"}'
      sign:
        hmac_sha256:
          secret: "${WEBHOOK_SECRET}"
          header: X-Hub-Signature-256
          format: "sha256={signature}"
          payload: "{body}"
  - id: SL
    title: Slack-style, base64, method and path
    kind: http
    request:
      path: /slack?x=1
      sign:
        hmac_sha256:
          secret: "${WEBHOOK_SECRET}"
          header: X-Signature
          format: "v0={signature}"
          payload: "v0:{timestamp}:{method}:{path}:{body}"
          encoding: base64
          timestamp_header: X-Request-Timestamp
""")
    results = observe(env, "GH", "SL")
    assert {outcome.status for _, outcome in results.values()} == {"passed"}
    github, slack = recorder.requests
    assert github["headers"]["X-Hub-Signature-256"] == "sha256=" + hmac.new(
        WEBHOOK_SECRET.encode(), b'{"zen": "ok"}', hashlib.sha256).hexdigest()
    stamp = slack["headers"]["X-Request-Timestamp"]
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"v0:{stamp}:GET:/slack?x=1:".encode(),
                      hashlib.sha256).digest()
    assert slack["headers"]["X-Signature"] == "v0=" + base64.b64encode(digest).decode()


def test_each_retry_is_signed_again_with_a_fresh_timestamp(tmp_path, recorder):
    recorder.statuses, recorder.slow = [503, 503], 1.05  # the next attempt is a second later
    env = environment(tmp_path, recorder.url, """\
  - id: R
    title: signed GET, retried
    kind: http
    timeout: 10s
    request:
      path: /events
      sign: {hmac_sha256: {secret: "${WEBHOOK_SECRET}", header: X-Signature}}
""")
    observation, outcome = observe(env, "R")["R"]
    assert outcome.status == "passed", outcome.message
    headers = [seen["headers"]["X-Signature"] for seen in recorder.requests]
    assert len(headers) == 3 and len(set(headers)) == 3
    assert all(stripe_valid(h, b"", WEBHOOK_SECRET) for h in headers)
    stamps = [a["signed_at"] for a in observation.seen["attempts"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert set(headers) <= set(observation.fields["secrets"])


def test_demo_webhook_verifies_the_stripe_signature(demo_server, tmp_path):
    server = demo_server()
    body = b'{"id": "evt_manual", "type": "checkout.session.completed"}'

    def deliver(header: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["Stripe-Signature"] = header
        return httpx.post(server.url + "/webhooks/checkout", content=body, headers=headers)

    now = str(int(time.time()))

    def sign(secret: str, stamp: str = now) -> str:
        mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        return f"t={stamp},v1={mac.hexdigest()}"

    assert deliver(None).status_code == 400
    assert deliver(sign("whsec_wrong")).json() == {"status": "failed",
                                                   "error": "signature_mismatch"}
    assert deliver(sign(SECRET, str(int(time.time()) - 3600))).status_code == 400  # replayed
    accepted = deliver(sign(SECRET))
    assert accepted.status_code == 200 and accepted.json()["status"] == "processed"
    healthy = observe(demo_environment(server, tmp_path), "F3")["F3"][1]
    assert healthy.status == "passed", healthy.message
    broken = observe(demo_environment(demo_server(faults=("webhook_failures",)), tmp_path),
                     "F3")["F3"][1]
    assert broken.status == "failed" and "status (400) == 200" in broken.message


# ---------------------------------------------------------------- signing configuration
@pytest.mark.parametrize(("sign", "environ", "problem"), [
    ('{sigv4: {access_key: A, secret_key: "${STORAGE_SECRET}", region: us-east-1}}',
     {"STORAGE_SECRET": ""}, r"H6\)\.request\.sign\.sigv4\.secret_key: is empty"),
    ('{sigv4: {access_key: A, secret_key: "${NOT_SET}", region: us-east-1}}', {},
     r"secret_key: environment variable NOT_SET is not set"),
    ('{sigv4: {access_key: A, secret_key: "${STORAGE_SECRET}", region: "US East 1"}}', {},
     r"sign\.sigv4\.region: String should match pattern"),
    ('{sigv4: {access_key: A, secret_key: x, region: us-east-1}, '
     'hmac_sha256: {secret: y}}', {}, r"sign: .*exactly one of 'sigv4' or 'hmac_sha256'"),
    ('{hmac_sha256: {secret: y, format: "t={timestamp}"}}', {}, r"format must contain"),
    ('{hmac_sha256: {secret: y, payload: "{timestamp}"}}', {}, r"payload must contain \{body\}"),
    ('{hmac_sha256: {secret: y, payload: "{nonce}.{body}"}}', {}, r"payload uses \{nonce\}"),
    ('{hmac_sha256: {secret: "${WEBHOOK_SECRET}", header: "Bad Header"}}', {},
     r"hmac_sha256\.header"),
])
def test_signing_misconfiguration_is_a_config_error_with_its_line(tmp_path, sign, environ,
                                                                   problem):
    checks = ("  - id: H6\n    title: t\n    kind: http\n    request:\n      method: HEAD\n"
              f"      sign: {sign}\n")
    with pytest.raises(ConfigError) as caught:
        environment(tmp_path, "http://127.0.0.1:9", checks, environ)
    assert any(re.search(problem, p) and ":13: " in p for p in caught.value.problems), \
        caught.value.problems


# ---------------------------------------------------------------- {run_id} and {uuid}
def test_signup_flow_uses_a_fresh_email_every_run(demo_server, tmp_path):
    server = demo_server()
    env = demo_environment(server, tmp_path)
    first, second = (observe(env, "F1-signup", run_id=f"run-{n}")["F1-signup"]
                     for n in (1, 2))
    for _, outcome in (first, second):
        assert outcome.status == "passed", outcome.message
    emails = [obs.asked["steps"][0]["body"] for obs, _ in (first, second)]
    uuids = [obs.fields["unique"]["uuid"] for obs, _ in (first, second)]
    assert uuids[0] != uuids[1] and all(u in e for u, e in zip(uuids, emails, strict=True))
    assert '"note":"run run-1"' in emails[0] and '"note":"run run-2"' in emails[1]
    login = first[0].asked["steps"][2]["body"]
    assert f"smoke+{uuids[0]}@example.test" in login  # the same uuid in every step of a run
    assert first[0].seen["unique"] == {"run_id": "run-1", "uuid": uuids[0]}


def test_signup_flow_fails_when_an_email_can_sign_up_twice(demo_server, tmp_path):
    env = demo_environment(demo_server(faults=("duplicate_signup",)), tmp_path)
    observation, outcome = observe(env, "F1-signup")["F1-signup"]
    assert outcome.status == "failed"
    assert "same email again: status (201) == 409" in outcome.message
    assert observation.seen["not_run"] == [
        {"step": "login", "why": "not run: step 'same email again' did not pass"}]


def test_without_uuid_the_second_run_of_a_signup_flow_fails(demo_server, tmp_path):
    env = environment(tmp_path, demo_server().url, """\
  - id: F1
    title: fixed email
    kind: flow
    mutating: true
    steps:
      - name: signup
        request: {method: POST, path: /auth/signup, json: {email: fixed@example.test,
                                                          password: "pw-{run_id}"}}
        expect: {status: "== 201"}
""")
    assert observe(env, "F1")["F1"][1].status == "passed"
    again = observe(env, "F1")["F1"][1]
    assert again.status == "failed" and "signup: status (409) == 201" in again.message


@pytest.mark.parametrize(("step", "problem"), [
    ("capture: {uuid: id}", r"capture name 'uuid' is reserved"),
    ("capture: {run_id: id}", r"capture name 'run_id' is reserved"),
])
def test_a_capture_cannot_shadow_run_id_or_uuid(tmp_path, step, problem):
    checks = f"""\
  - id: F
    title: t
    kind: flow
    steps:
      - name: one
        request: {{path: /x}}
        {step}
      - name: two
        request: {{path: "/x/{{uuid}}/{{run_id}}"}}
"""
    with pytest.raises(ConfigError) as caught:
        environment(tmp_path, "http://127.0.0.1:9", checks)
    assert any(re.search(problem, p) for p in caught.value.problems), caught.value.problems


def test_run_id_and_uuid_fill_every_part_of_a_request(tmp_path, recorder):
    env = environment(tmp_path, recorder.url, """\
  - id: F
    title: every part
    kind: flow
    mutating: true
    steps:
      - name: one
        request:
          method: PUT
          path: /users/{uuid}
          params: {run: "{run_id}"}
          headers: {X-Request-Id: "{run_id}-{uuid}"}
          json: {id: "{uuid}", label: "user {uuid}"}
        expect: {json: {path: "== /users/{uuid}"}}
      - name: two
        request: {method: POST, path: /raw, body: "uuid={uuid}"}
""")
    observation, outcome = observe(env, "F", run_id="20260101T000000Z-abc123")["F"]
    assert outcome.status == "passed", outcome.message
    value = observation.fields["unique"]["uuid"]
    one, two = recorder.requests
    assert one["path"] == f"/users/{value}"
    assert one["headers"]["X-Request-Id"] == f"20260101T000000Z-abc123-{value}"
    assert json.loads(one["body"]) == {"id": value, "label": f"user {value}"}
    assert two["body"] == f"uuid={value}"
    assert observation.asked["steps"][0]["url"].endswith("run=20260101T000000Z-abc123")


# ---------------------------------------------------------------- cookie domain and path
def test_cookie_domain_and_path_pass_healthy_and_fail_on_the_old_domain(demo_server, tmp_path):
    healthy = observe(demo_environment(demo_server(), tmp_path), "F1")["F1"][1]
    assert healthy.status == "passed", healthy.message
    assert 'cookie refresh_token domain (host-only) ("127.0.0.1") == 127.0.0.1' in \
        healthy.message
    observation, moved = observe(demo_environment(demo_server(faults=("cookie_domain",)),
                                                  tmp_path), "F1")["F1"]
    assert moved.status == "failed"
    assert 'cookie refresh_token domain ("old.opsgate-demo.test") == 127.0.0.1' in moved.message
    assert 'cookie refresh_token path ("/") == /auth' in moved.message
    (cookie,) = observation.seen["cookies"]  # the attributes as evidence, never the value
    assert cookie["name"] == "refresh_token" and cookie["domain"] == "old.opsgate-demo.test"
    assert cookie["path"] == "/" and "value" not in cookie


def test_cookie_domain_ignores_case_and_a_leading_dot_and_path_defaults(tmp_path):
    @Request.application
    def app(request: Request) -> Response:
        response = Response("{}", content_type="application/json")
        response.headers.add("Set-Cookie", "a=1; Domain=.Example.TEST; Path=/app")
        response.headers.add("Set-Cookie", "b=2")  # host-only, default path /api/v1
        return response

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = environment(tmp_path, f"http://127.0.0.1:{server.server_port}", """\
  - id: OK
    title: matches
    kind: http
    request: {path: /api/v1/login}
    expect:
      cookies:
        a: {domain: EXAMPLE.test, path: /app}
        b: {domain: 127.0.0.1, path: /api/v1}
  - id: BAD
    title: mismatches
    kind: http
    request: {path: /api/v1/login}
    expect:
      cookies:
        a: {domain: www.example.test, path: /App}
        b: {domain: .example.test, path: /}
""")
        results = observe(env, "OK", "BAD")
    finally:
        server.shutdown()
    assert results["OK"][1].status == "passed", results["OK"][1].message
    bad = results["BAD"][1]
    assert bad.status == "failed"
    for line in ('cookie a domain ("example.test") == www.example.test',
                 'cookie a path ("/app") == /App',
                 'cookie b domain (host-only) ("127.0.0.1") == example.test',
                 'cookie b path (default) ("/api/v1") == /'):
        assert line in bad.message, bad.message
