"""HTTP probe (httpx): one request with a total deadline, bounded body, retries when safe.

Retries happen only for idempotent methods, on connection errors, 429 and 503, at most
``retries`` times with jittered backoff, all inside the check's deadline; every attempt is
kept in the evidence. The body is streamed and cut at ``MAX_BODY`` bytes so a huge or
endless answer cannot stall the run.
"""

from __future__ import annotations

import json
import random
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from opsgate.deadline import Deadline
from opsgate.errors import ProbeConnectionError, ProbeError, ProbeTimeout
from opsgate.observation import Observation, utcnow

MAX_BODY = 1_000_000
EXCERPT = 2_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 503})
SIGNER = "opsgate.signer"
"""The ``httpx.Request.extensions`` key of a request's signer (taken off before sending)."""


def make_http_client(verify: bool = True, *, keep_cookies: bool = False) -> httpx.Client:
    """A client for one target: no redirects followed (a check sees what the server says).

    The run's shared clients keep no cookies, so one check's session never reaches another
    check; a flow makes its own client with ``keep_cookies=True`` for its own steps.
    """
    jar = None if keep_cookies else CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(verify=verify, follow_redirects=False, cookies=jar,
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))


def build_request(client: httpx.Client, base_url: str, request: Any,
                  default_headers: dict[str, str],
                  values: dict[str, Any] | None = None) -> httpx.Request:
    """The httpx request for ``request`` (an ``HttpRequest``), ``{name}`` filled from values."""
    values = values or {}
    headers = {**default_headers}
    for name, value in request.headers.items():
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = _fill(value, values)
    body: dict[str, Any] = {}
    if request.json_body is not None:
        body["json"] = _fill(request.json_body, values)
    elif request.body is not None:
        body["content"] = _fill(request.body, values).encode()
    built = client.build_request(
        request.method, base_url.rstrip("/") + _fill(request.path, values),
        params={k: _fill(v, values) for k, v in request.params.items()} or None,
        headers=headers, **body)
    sign = getattr(request, "sign", None)
    if sign is not None:
        built.extensions[SIGNER] = sign.signer()
    return built


def _fill(template: Any, values: dict[str, Any]) -> Any:
    """``{name}`` placeholders replaced by captured values, in strings, lists and dicts."""
    if isinstance(template, str):
        if not values or "{" not in template:
            return template
        for name, value in values.items():
            template = template.replace("{" + name + "}", str(value))
        return template
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(item, values) for item in template]
    return template


def probe_http(client: httpx.Client, request: httpx.Request, deadline: Deadline,
               *, retries: int = 2) -> Observation:
    """Send ``request`` until an answer worth judging arrives or the deadline passes.

    A request built with a signer (``request.sign``) is signed again before every attempt.
    """
    started = utcnow()
    signer = request.extensions.pop(SIGNER, None)
    signatures: list[str] = []
    signed = _sign(signer, request, signatures)
    asked = _asked(request)
    attempts: list[dict[str, Any]] = []
    can_retry = request.method in SAFE_METHODS
    while True:
        try:
            if attempts:
                signed = _sign(signer, request, signatures)
            fields, seen = _send(client, request, deadline)
        except ProbeError as exc:
            attempts.append({"error": str(exc), **signed})
            if not (can_retry and len(attempts) <= retries and _backoff(deadline, len(attempts))):
                exc.asked, exc.seen = asked, {"attempts": attempts}
                exc.secrets = signatures  # type: ignore[attr-defined]
                raise
            continue
        attempts.append({"status": seen["status"], "latency_ms": seen["latency_ms"], **signed})
        if (can_retry and seen["status"] in RETRY_STATUSES and len(attempts) <= retries
                and _backoff(deadline, len(attempts))):
            continue
        break
    if len(attempts) > 1 or signed:
        seen["attempts"] = attempts
    if len(attempts) > 1:
        seen["note"] = f"answered on attempt {len(attempts)} of {retries + 1}"
    if signatures:
        fields["secrets"] = signatures
    return Observation("http", asked, seen, fields, started_at=started, finished_at=utcnow())


def _sign(signer: Any, request: httpx.Request, signatures: list[str]) -> dict[str, str]:
    """Sign ``request`` in place (a fresh signature, kept in ``signatures`` for the run's
    redactor); what the evidence says about it."""
    if signer is None:
        return {}
    try:
        signed_at, values = signer(request)
    except Exception as exc:  # a signer that cannot sign makes the check an error
        raise ProbeError(f"could not sign {request.method} {request.url.path}: "
                         f"{type(exc).__name__}: {exc}", asked=_asked(request)) from exc
    signatures.extend(values)
    return {"signed_at": signed_at}


def _backoff(deadline: Deadline, attempt: int) -> bool:
    """Sleep a jittered backoff before another attempt, if the deadline leaves room."""
    pause = random.uniform(0.5, 1.0) * 0.2 * 2 ** (attempt - 1)
    if deadline.remaining() <= pause + 0.05:
        return False
    time.sleep(pause)
    return True


def _send(client: httpx.Client, request: httpx.Request,
          deadline: Deadline) -> tuple[dict[str, Any], dict[str, Any]]:
    left = deadline.check(f"sending {request.method} {request.url.path}")
    begin = time.perf_counter()
    try:
        request.extensions["timeout"] = httpx.Timeout(left).as_dict()
        response = client.send(request, stream=True)
        try:
            body = _read_body(response, deadline)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        raise ProbeTimeout(f"timed out after {deadline.seconds:g}s waiting for "
                           f"{request.method} {request.url.path} ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise ProbeConnectionError(_connection_message(request, exc)) from exc
    latency_ms = round((time.perf_counter() - begin) * 1000, 1)
    return _fields(response, body, latency_ms)


def _read_body(response: httpx.Response, deadline: Deadline) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        deadline.check("reading the response body")
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


def _fields(response: httpx.Response, body: bytes,
            latency_ms: float) -> tuple[dict[str, Any], dict[str, Any]]:
    text = body.decode(response.encoding or "utf-8", errors="replace")
    headers = {name.lower(): value for name, value in response.headers.items()}
    fields: dict[str, Any] = {"status": response.status_code, "latency_ms": latency_ms,
                              "headers": headers, "body": text,
                              "cookies": _cookies(response)}
    try:
        fields["json"] = json.loads(text) if text.strip() else None
    except ValueError:
        fields["json"] = None
    seen = {"status": response.status_code, "latency_ms": latency_ms,
            "headers": {k.decode(): v.decode(errors="replace")
                        for k, v in response.headers.raw},
            "body_excerpt": text[:EXCERPT] + ("..." if len(text) > EXCERPT else ""),
            "body_bytes": len(body)}
    if fields["cookies"]:
        seen["cookies"] = _cookie_attributes(fields["cookies"])
    return fields, seen


def _cookies(response: httpx.Response) -> dict[str, dict[str, Any]]:
    """Set-Cookie attributes by cookie name: ``{"refresh_token": {"httponly": True, ...}}``."""
    from http.cookies import SimpleCookie

    cookies: dict[str, dict[str, Any]] = {}
    url = response.request.url
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except Exception:  # a malformed cookie is reported as absent, not as a crash
            continue
        for name, morsel in jar.items():
            cookies[name] = {"httponly": bool(morsel["httponly"]),
                             "secure": bool(morsel["secure"]),
                             "samesite": morsel["samesite"] or None,
                             "path": morsel["path"] or None,
                             "domain": morsel["domain"] or None,
                             "host": url.host, "default_path": default_path(url.path),
                             "present": True}
    return cookies


def default_path(path: str) -> str:
    """A cookie's path when Set-Cookie names none (RFC 6265 5.1.4): the request's directory."""
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[:path.rindex("/")]


def _cookie_attributes(cookies: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The cookies' attributes for the evidence, never their values."""
    return [{"name": name, **{key: value for key, value in seen.items()
                              if key not in ("present", "default_path")}}
            for name, seen in cookies.items()]


def _connection_message(request: httpx.Request, exc: httpx.HTTPError) -> str:
    what = str(exc) or type(exc).__name__
    host = f"{request.url.scheme}://{request.url.host}:{request.url.port or ''}"
    if "ssl" in what.lower() or "certificate" in what.lower():
        return f"TLS error talking to {host}: {what}"
    return f"could not connect to {host}: {what}"


def _asked(request: httpx.Request) -> dict[str, Any]:
    asked: dict[str, Any] = {"method": request.method, "url": str(request.url),
                             "headers": {k.decode(): v.decode(errors="replace")
                                         for k, v in request.headers.raw
                                         if k.decode().lower() not in _TRANSPORT_HEADERS}}
    if request.content:
        text = request.content.decode(errors="replace")
        asked["body"] = text[:EXCERPT] + ("..." if len(text) > EXCERPT else "")
    return asked


_TRANSPORT_HEADERS = frozenset({"host", "accept", "accept-encoding", "connection",
                                "user-agent", "content-length"})
