"""No secret reaches any output of a real run, in any encoding (guarantee 4).

Hypothesis draws about 50 secrets per run (length 8..64, any unicode but control characters and
surrogates, regex metacharacters, values that contain each other). They enter through
environment variables: ``${VAR}`` in target and request headers, URL userinfo
(``http://opsgate:${PW}@127.0.0.1``), query parameters, JSON bodies and a database URL
password; a real SQLite database holds them in rows; a hand-written check prints them, logs
them (``app`` logger and httpx's own INFO line with the full URL), raises with them and fails
an assertion on them (``-l`` shows its locals). The real plugin then runs in a pytest child
against a real HTTP server on 127.0.0.1 that echoes each request's URL, headers and body into
its JSON answer and a Set-Cookie. Every output (stdout, stderr, every file of the run folder)
is scanned for every secret in every form: raw, URL-encoded, base64 (alone or inside
``user:secret``, standard or URL-safe, with or without padding), HTML-, XML- and JSON-escaped,
Python ``repr``, two layers of these, and the pieces a truncation (``...``) leaves.

About 20 runs of 50 secrets (1,000 secrets in all) keep the test near a minute on two cores;
``test_redactor_removes_every_form`` checks ``Redactor.text`` itself with many more examples;
``test_other_channels_leak_nothing`` covers pytest's other outputs (collection errors,
warnings, logged tracebacks, JUnit properties, pytest-html extras, xfail reasons, configuration
errors, a PostgreSQL URL password when the run stops before any check);
``test_uncaptured_output_is_refused`` runs a check that writes its secrets every way it can
(print, stderr, ``sys.__stdout__``, a logging handler on the real stderr, ``os.write``, a
subprocess) with ``-s`` and every other capture mode that would let them through: each must be
a usage error with no secret in the terminal, while the default capture shows them redacted.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from unittest import mock
from urllib.parse import quote, quote_plus

import pytest
import pytest_html
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request, Response

from opsgate.redaction import MASK, Redactor
from tests.support.http import serve

REPO = Path(__file__).resolve().parents[2]
PER_RUN = 50
RUNS = int(os.environ.get("OPSGATE_LEAK_RUNS", "20"))
VAR = "OPSGATE_SAFETY_"
LEAN_PYTEST = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")

# ---------------------------------------------------------------- secrets
_METACHARACTERS = ".^$*+?{}[]\\|()"
_CHARACTER = st.one_of(
    st.characters(exclude_categories=("Cc", "Cs")),
    st.sampled_from(_METACHARACTERS + "%&<>\"'/:@#=;, +-_~!`"),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
)
_HEADER_CHARACTER = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


def _boilerplate() -> str:
    """Text every run writes whatever its secrets: the mask, pytest-html's script and style."""
    resources = Path(pytest_html.__file__).parent / "resources"
    return "\n".join([MASK * 2, *(path.read_text("utf-8") for path in resources.iterdir()
                                  if path.is_file())])


BOILERPLATE = _boilerplate()


def distinctive(value: str) -> bool:
    """Secret-like: enough different characters, and no 4 of them in a row that the report's
    script holds (Hypothesis likes words such as ``undefined``)."""
    return len(set(value)) >= 5 and all(value[i:i + 4] not in BOILERPLATE
                                        for i in range(len(value) - 3))


SECRET = st.text(_CHARACTER, min_size=8, max_size=64).filter(distinctive)
HEADER_SECRET = st.text(_HEADER_CHARACTER, min_size=8, max_size=64).filter(distinctive)


@st.composite
def nested(draw: st.DrawFn, base: list[str]) -> str:
    """A secret that contains another one, or is contained in it."""
    source = draw(st.sampled_from(base))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(source) - 8))
        return source[start:start + draw(st.integers(8, len(source) - start))]
    prefix = draw(st.text(_CHARACTER, max_size=8))
    suffix = draw(st.text(_CHARACTER, min_size=1, max_size=8))
    return prefix + source[:64 - len(prefix) - len(suffix)] + suffix


@st.composite
def secret_sets(draw: st.DrawFn) -> list[str]:
    """About ``PER_RUN`` distinct secrets: unicode ones, header-safe ones, nested ones."""
    base = draw(st.lists(SECRET, min_size=PER_RUN - 12, max_size=PER_RUN - 12, unique=True))
    base += draw(st.lists(HEADER_SECRET, min_size=6, max_size=6, unique=True))
    base += [draw(nested(base)) for _ in range(6)]
    return [value for value in dict.fromkeys(base) if distinctive(value)]


def header_safe(value: str) -> bool:
    """What HTTP clients accept in a header value (printable ASCII, no outer spaces)."""
    return value.isascii() and value.isprintable() and value == value.strip()


# ---------------------------------------------------------------- every form of a secret
def xml_escape(value: str) -> str:
    """What pytest's junitxml writes: XML escapes, ``#xNN`` for characters XML forbids."""
    out = []
    for char in html.escape(value, quote=False):
        code = ord(char)
        allowed = (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0x7E or 0x80 <= code <= 0xD7FF
                   or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF)
        out.append(char if allowed else f"#x{code:02X}")
    return "".join(out)


_LAYERS = {
    "raw": lambda v: v,
    "url": lambda v: quote(v, safe=""),
    "url+": lambda v: quote_plus(v, safe=""),
    "url/": lambda v: quote(v),
    "url-lower": lambda v: "".join(c if c.isalnum() and c.isascii() else
                                   "".join(f"%{b:02x}" for b in c.encode()) for c in v),
    "html": html.escape,
    "html-text": lambda v: html.escape(v, quote=False),
    "xml": xml_escape,
    "json": lambda v: json.dumps(v)[1:-1],
    "json-utf8": lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
    "repr": lambda v: repr(v)[1:-1],
}
_TWO_LAYERS = [("json", "html"), ("json-utf8", "html"), ("html", "json"), ("json", "json"),
               ("repr", "html"), ("repr", "json"), ("html", "html"), ("url", "json")]


def base64_pieces(value: str) -> set[str]:
    """Base64 text present wherever ``value`` is base64-encoded, alone or inside more bytes.

    Written independently of the redactor: encode the value after 0, 1 and 2 filler bytes and
    keep the characters that do not depend on the filler or on what follows.
    """
    encodings = {value.encode()}
    with contextlib.suppress(UnicodeEncodeError):
        encodings.add(value.encode("latin-1"))
    pieces = set()
    for data in encodings:
        for offset in range(3):
            encoded = base64.b64encode(b"\x01" * offset + data + b"\x01\x01").decode()
            other = base64.b64encode(b"\xfe" * offset + data + b"\xfe\xfe").decode()
            stable = [a if a == b else None for a, b in zip(encoded, other, strict=True)]
            start = next(i for i, c in enumerate(stable) if c is not None)
            end = start
            while end < len(stable) and stable[end] is not None:
                end += 1
            piece = encoded[start:end]
            pieces |= {piece, piece.replace("+", "-").replace("/", "_")}
    return {piece for piece in pieces if len(piece) >= 8}


def forms(secret: str) -> dict[str, str]:
    """Every form of ``secret`` to look for, by a name that says what it is."""
    found = {name: layer(secret) for name, layer in _LAYERS.items()}
    for inner, outer in _TWO_LAYERS:
        found[f"{outer}({inner})"] = _LAYERS[outer](_LAYERS[inner](secret))
    for index, piece in enumerate(sorted(base64_pieces(secret))):
        found[f"base64#{index}"] = piece
    return {name: form for name, form in found.items() if len(form) >= 8}


def leaks(secrets: list[str], outputs: dict[str, str]) -> list[str]:
    """``where: form of secret`` for every form of every secret found in an output."""
    named: dict[str, list[str]] = {}
    for secret in secrets:
        for name, form in forms(secret).items():
            named.setdefault(form, []).append(f"{name} of {secret!r}")
    found = [f"{where}: {form!r} ({', '.join(names)})" for form, names in named.items()
             for where, text in outputs.items() if form in text]
    return found + truncated_leaks(secrets, outputs)


_ELLIPSIS = re.compile(r"\.\.\.|\u2026")
SHORTEST_PIECE = 4  # characters of the secret


@functools.lru_cache(maxsize=4096)
def pieces(secret: str) -> frozenset[str]:
    """Heads and tails of every non-base64 form that hold at least 4 whole characters."""
    found = set()
    for layer in _LAYERS.values():
        form = layer(secret)
        for count in range(SHORTEST_PIECE, len(secret)):
            head, tail = layer(secret[:count]), layer(secret[-count:])
            found |= {piece for piece, ok in ((head, form.startswith(head)),
                                              (tail, form.endswith(tail)))
                      if ok and len(piece) >= 6}
    return frozenset(found)


def truncated_leaks(secrets: list[str], outputs: dict[str, str]) -> list[str]:
    """Pieces of a secret that a truncation left: a head just before ``...``, a tail after it
    (right after, or ending at the closing quote of a shortened repr).

    pytest shortens long values in assertion messages (``'abcdefghijklm...nopqrstuvwxyz'``),
    and evidence cuts long bodies: the remains of a secret are a leak too.
    """
    found: list[str] = []
    truncated = {where: text for where, text in outputs.items() if _ELLIPSIS.search(text)}
    if not truncated:
        return found
    known = {piece: secret for secret in secrets for piece in pieces(secret)}
    longest = max(map(len, known), default=0)
    for where, text in truncated.items():
        for match in _ELLIPSIS.finditer(text):
            before = text[max(0, match.start() - longest):match.start()]
            after = text[match.end():match.end() + longest]
            ends = [len(after)] + [m.start() for m in re.finditer("[\"']", after)]
            candidates = {before[-n:] for n in range(1, len(before) + 1)}
            candidates |= {after[:n] for n in range(1, len(after) + 1)}
            candidates |= {after[start:end] for end in ends for start in range(end)}
            found += [f"{where}: piece {piece!r} of secret {known[piece]!r} beside a "
                      f"truncation at {match.start()}" for piece in candidates & known.keys()]
    return found


# ---------------------------------------------------------------- the echo server
@Request.application
def _echo(request: Request) -> Response:
    """The request's URL, headers and body as JSON, and a cookie made from its token."""
    answer = {"url": request.url, "args": request.args.to_dict(),
              "headers": dict(request.headers), "body": request.get_data(as_text=True)}
    response = Response(json.dumps(answer), content_type="application/json")
    token = request.args.get("token") or request.headers.get("Authorization") or "none"
    response.set_cookie("session", token)
    return response


@pytest.fixture(scope="module")
def echo_server() -> Iterator[str]:
    with serve(_echo) as url:
        yield url


# ---------------------------------------------------------------- the run
HANDWRITTEN = '''\
"""A hand-written check that does with secrets what careless checks do."""

import logging
import os
import sys
from urllib.parse import quote

import httpx
import pytest

COUNT = int(os.environ["OPSGATE_SAFETY_COUNT"])
BASE = os.environ["OPSGATE_SAFETY_BASE"]


@pytest.fixture(scope="module")
def httpx_logs_urls():
    """httpx at INFO logs every request with its full URL, query token and password."""
    logging.getLogger("httpx").setLevel(logging.INFO)
    host = BASE.split("://", 1)[1]
    with httpx.Client() as client:
        for index in range(0, COUNT, 7):
            secret = os.environ[f"OPSGATE_SAFETY_{index}"]
            client.get(f"{BASE}/echo", params={"token": secret})
            client.get(f"http://opsgate:{quote(secret, safe='')}@{host}/echo")


@pytest.mark.parametrize("index", range(COUNT))
def test_handwritten(index, httpx_logs_urls):
    secret = os.environ[f"OPSGATE_SAFETY_{index}"]
    print("the secret is", secret)
    print("to stderr:", secret, file=sys.stderr)
    logging.getLogger("app").warning(secret)
    logging.getLogger("app").info("token=%s and %r", secret, {"password": secret})
    if index % 3 == 1:
        raise RuntimeError(f"login with {secret!r} was refused")
    expected = "not the secret"
    assert secret == expected
'''


def environment_file(path: Path, secrets: list[str], server: str, database: Path) -> str:
    """The YAML environment: every secret referenced as ``${VAR}`` somewhere."""
    headers = [i for i, s in enumerate(secrets) if header_safe(s)]
    lines = ["name: safety", "production: true", "targets:", "  http:", "    api:",
             f"      base_url: {server}", "      retries: 0", "      timeout: 5s"]
    if headers:
        lines.append(f'      headers: {{Authorization: "Bearer ${{{VAR}{headers[0]}}}"}}')
    basic = list(range(0, len(secrets), 10))
    host = server.split("://", 1)[1]
    for i in basic:
        lines += [f"    basic{i}:", f'      base_url: "http://opsgate:${{{VAR}URL{i}}}@{host}"',
                  "      retries: 0"]
    lines += ["  databases:", f'    main: {{url: "sqlite://opsgate:${{{VAR}URL0}}@/{database}"}}',
              "checks:"]
    for i in range(len(secrets)):
        var = f"${{{VAR}{i}}}"
        request_headers = f'X-Api-Key: "{var}", X-Note: "{var}"' if i in headers else ""
        lines += [f"  - id: Q{i}", f"    title: echo {i}", "    kind: http", "    target: api",
                  f'    request: {{path: /echo, params: {{token: "{var}", q: "{var}"}},'
                  f' json: {{password: "{var}", note: "{var}"}}, headers: {{{request_headers}}}}}',
                  '    expect: {json: {"args.q": "== nope"}}']
    for i in basic:
        lines += [f"  - {{id: B{i}, title: basic {i}, kind: http, target: basic{i},"
                  ' request: {path: /echo}, expect: {json: {"headers.Authorization": "== x"}}}']
    lines += ["  - {id: D1, title: rows, kind: sql, database: main,"
              ' violations: "select id, api_key, note from creds"}',
              "  - {id: D2, title: one row, kind: sql, database: main,"
              ' scalar: "select note from creds where id = 1", expect: "== nope"}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.name


def variables(secrets: list[str], server: str) -> dict[str, str]:
    values = {f"{VAR}{i}": secret for i, secret in enumerate(secrets)}
    values.update({f"{VAR}URL{i}": quote(secrets[i], safe="") for i in range(0, len(secrets), 10)})
    values.update({f"{VAR}COUNT": str(len(secrets)), f"{VAR}BASE": server})
    return values


def make_database(path: Path, secrets: list[str]) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("create table creds (id integer primary key, api_key text, note text)")
        conn.executemany("insert into creds (api_key, note) values (?, ?)",
                         [(s, s) for s in secrets[:10]])
    conn.close()


def outputs_of(result: pytest.RunResult, run_folder: Path) -> dict[str, str]:
    """stdout, stderr and every file the run wrote."""
    found = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    files = [path for path in run_folder.rglob("*") if path.is_file()]
    found.update({str(path.relative_to(run_folder)): path.read_text("utf-8", "replace")
                  for path in files})
    return found


@pytest.fixture
def bare_catalog(pytester: pytest.Pytester) -> pytest.Pytester:
    """A copy of ``checks/`` in pytester's folder."""
    shutil.copytree(REPO / "checks", pytester.path / "checks")
    return pytester


@pytest.fixture
def catalog(bare_catalog: pytest.Pytester) -> pytest.Pytester:
    """A copy of ``checks/`` plus the hand-written check."""
    (bare_catalog.path / "checks" / "test_handwritten.py").write_text(HANDWRITTEN)
    return bare_catalog


@settings(max_examples=RUNS, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(secrets=secret_sets())
def test_no_secret_reaches_any_output(catalog: pytest.Pytester, echo_server: str,
                                      secrets: list[str]) -> None:
    run = len(list(catalog.path.glob("example*")))
    folder = catalog.path / f"example{run}"
    folder.mkdir()
    (folder / "secrets.json").write_text(json.dumps(secrets))  # to replay a failure
    make_database(folder / "app.sqlite", secrets)
    env = environment_file(folder / "safety.yaml", secrets, echo_server, folder / "app.sqlite")
    with mock.patch.dict(os.environ, variables(secrets, echo_server)):
        result = catalog.runpytest_subprocess(
            "checks", "--env", str(folder / env), "--report-dir", str(folder / "out"),
            "-rA", "-l", "--log-level", "DEBUG", *LEAN_PYTEST, timeout=120)
    assert result.ret == 1, result.stdout.str()[-3000:]
    (run_folder,) = (folder / "out").iterdir()
    outputs = outputs_of(result, run_folder)
    assert {"report.html", "evidence.json", "evidence.jsonl", "junit.xml"} <= set(outputs)
    assert MASK in outputs["evidence.json"] and MASK in outputs["stdout"]
    found = leaks(secrets, outputs)
    assert not found, f"{len(found)} leaks, first ones:\n" + "\n".join(found[:20])


# ---------------------------------------------------------------- pytest's other channels
FIXED_SECRETS = ["Zq9-s3cr3t-VALUE-0042", "pässwörd(.*)+?[漢字]😀|$", "%41\\u0042&amp;C-d3f"]
OTHER_CHANNELS = '''\
"""A hand-written check that reaches pytest's other outputs with the secrets."""

import logging
import os
import warnings

import pytest

SECRETS = [os.environ[f"OPSGATE_SAFETY_{index}"] for index in range(3)]


def test_warning():
    warnings.warn(f"deprecated token {SECRETS[0]}")


def test_logged_exception():
    try:
        raise ValueError(f"bad credentials {SECRETS}")
    except ValueError:
        logging.getLogger("app").exception("login failed")


def test_property(record_property):
    record_property("token", SECRETS[1])


def test_report_extras(extras):
    from pytest_html import extras as html_extras

    extras.append(html_extras.text(f"secret {SECRETS[2]}"))
    extras.append(html_extras.url(f"http://u:{SECRETS[0]}@127.0.0.1/"))


def test_expected_failure():
    pytest.xfail(f"xfail because {SECRETS[1]}")


def test_skipped():
    pytest.skip(f"skipped because {SECRETS[2]}")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError(f"teardown saw {SECRETS[0]}")


def test_teardown_error(broken_teardown):
    pass
'''
COLLECTION_ERROR = '''\
import os

raise RuntimeError(f"cannot import with {os.environ['OPSGATE_SAFETY_1']}")
'''
BACKGROUND_THREAD = '''\
"""A worker thread that prints the secret inside a test and outside any test."""

import os
import sys
import threading

SECRET = os.environ["OPSGATE_SAFETY_0"]


def _chatter():
    print(f"worker token {SECRET}")
    sys.stderr.write(f"worker saw {SECRET}\\n")


def _worker():
    thread = threading.Thread(target=_chatter)
    thread.start()
    thread.join()


class _Outside:
    """Runs the worker while pytest reports test_first's teardown: its capture is off."""

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown" and "test_first" in report.nodeid:
            _worker()


def test_first(request):
    request.config.pluginmanager.register(_Outside(), "outside-worker")
    _worker()


def test_second():
    pass
'''
_SCENARIOS = {
    # module written beside the catalog, environment lines, extra pytest arguments
    "warnings, logged exceptions, properties, extras, xfail, skip, teardown": (
        OTHER_CHANNELS, "", ("--log-cli-level", "INFO", "--log-file-level", "DEBUG")),
    "collection error": (COLLECTION_ERROR, "", ()),
    "a thread printing inside and outside tests": (BACKGROUND_THREAD, "", ()),
    "invalid environment": (None, "    bad: {base_url: 'http://127.0.0.1:9', "
                                  "timeout: '${OPSGATE_SAFETY_0}'}\n", ()),
    "database unreachable before any check": (
        None, "  databases:\n    pg: {url: 'postgresql+psycopg://opsgate:${OPSGATE_SAFETY_URL1}"
              "@127.0.0.1:1/app', connect_timeout: 1s}\n", ()),
}


@pytest.mark.parametrize("scenario", list(_SCENARIOS))
def test_other_channels_leak_nothing(bare_catalog: pytest.Pytester, scenario: str) -> None:
    """Collection errors, warnings, logged tracebacks (live log and log file), JUnit
    properties, pytest-html extras, xfail and skip reasons, teardown errors, configuration
    problems and a run stopped before any check: none shows a secret."""
    catalog = bare_catalog
    module, targets, arguments = _SCENARIOS[scenario]
    if module is not None:
        (catalog.path / "checks" / "test_channel.py").write_text(module)
    database_check = ("  - {id: P1, title: pg, kind: sql, database: pg, scalar: 'select 1',"
                      " expect: '== 1'}\n" if "databases" in targets else "")
    environment = catalog.path / "channels.yaml"
    environment.write_text(
        "name: channels\ntargets:\n  http:\n    api:\n      base_url: http://127.0.0.1:9\n"
        f"      headers: {{Authorization: 'Bearer ${{{VAR}0}}', X-Key: '${{{VAR}2}}'}}\n"
        + (targets if "databases" not in targets else "") + (
            targets if "databases" in targets else "")
        + "checks:\n  - {id: N1, title: nothing, kind: http, request: {path: /x, params: "
          f"{{token: '${{{VAR}1}}'}}}}, expect: {{status: '== 200'}}}}\n" + database_check)
    values = {f"{VAR}{i}": s for i, s in enumerate(FIXED_SECRETS)}
    values.update({f"{VAR}URL{i}": quote(s, safe="") for i, s in enumerate(FIXED_SECRETS)})
    report_dir = catalog.path / "out"
    with mock.patch.dict(os.environ, values):
        result = catalog.runpytest_subprocess(
            "checks", "--env", str(environment), "--report-dir", str(report_dir), "-rA", "-l",
            "--log-level", "DEBUG", "--log-file", str(catalog.path / "run.log"),
            *arguments, *LEAN_PYTEST, timeout=120)
    outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    if (catalog.path / "run.log").exists():
        outputs["run.log"] = (catalog.path / "run.log").read_text("utf-8", "replace")
    for path in report_dir.rglob("*") if report_dir.exists() else ():
        if path.is_file():
            outputs[str(path.relative_to(report_dir))] = path.read_text("utf-8", "replace")
    assert len(outputs) > 2 or result.ret == pytest.ExitCode.USAGE_ERROR
    found = leaks(FIXED_SECRETS, outputs)
    assert not found, f"{scenario}: {len(found)} leaks:\n" + "\n".join(found[:20])
    if module is BACKGROUND_THREAD:  # the worker's lines are there, masked
        (report,) = [text for name, text in outputs.items() if name.endswith("report.html")]
        assert "worker token " + MASK in report, outputs["stdout"][-2000:]  # inside: captured
        assert "worker saw " + MASK in report
        assert "worker token " + MASK in outputs["stdout"]  # outside: the terminal
        assert "worker saw " + MASK in outputs["stderr"]


# ---------------------------------------------------------------- the redactor alone
_CONTEXT = st.text(st.sampled_from("abcxyz0189 ,-"), max_size=20)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(secrets=st.lists(SECRET, min_size=1, max_size=4, unique=True), data=st.data())
def test_redactor_removes_every_form(secrets: list[str], data: st.DataObject) -> None:
    secrets += [data.draw(nested(secrets))]
    secret = data.draw(st.sampled_from(secrets))
    name, form = data.draw(st.sampled_from(sorted(forms(secret).items())))
    wrapper = data.draw(st.sampled_from(["{}", "user:{}", "{}:pw", "x{}y", "Basic {}"]))
    if name.startswith("base64"):
        form = base64.b64encode(wrapper.format(secret).encode()).decode()
    before, after = data.draw(_CONTEXT), data.draw(_CONTEXT)
    text = f"{before} {form} {after}"
    redacted = Redactor(secrets).text(text)
    assert not leaks(secrets, {"text": redacted}), (name, text, redacted)
    if Redactor().text(text) == text:  # no sensitive name in the text: only the secret goes
        assert redacted.startswith(f"{before} ") and redacted.endswith(f" {after}")


# ---------------------------------------------------------------- signed requests
SIGNING_SECRETS = ["Sig-s3cr3t-KEY/+=0042-AbCdEf", "whsec_pässwörd(.*)+?[漢字]|$-77"]
SIGNED_ENVIRONMENT = """\
name: signing
targets:
  http:
    api: {base_url: "BASE", retries: 0, timeout: 5s}
checks:
  - id: H6
    title: sigv4
    kind: http
    request:
      path: /bucket
      sign: {sigv4: {access_key: AKIDSAFETY, secret_key: "${OPSGATE_SAFETY_0}", region: us-east-1}}
    expect: {json: {"headers.Authorization": "== nope"}}
  - id: F3
    title: stripe
    kind: http
    mutating: true
    request:
      method: POST
      path: /hook
      json: {id: evt_1}
      sign: {hmac_sha256: {secret: "${OPSGATE_SAFETY_1}"}}
    expect: {json: {'headers."Stripe-Signature"': "== nope", body: "== nope"}}
  - id: CUSTOM
    title: a header name no default pattern matches
    kind: http
    request:
      path: /custom
      sign:
        hmac_sha256: {secret: literal-Hmac-Secret-99, header: X-Webhook-Auth,
                      format: "{signature}", payload: "{body}", encoding: base64}
    expect: {json: {'headers."X-Webhook-Auth"': "== nope"}}
  - id: FLOW
    title: signed flow step
    kind: flow
    mutating: true
    steps:
      - name: deliver
        request:
          method: POST
          path: "/flow/{uuid}"
          body: "run {run_id}"
          sign: {hmac_sha256: {secret: "${OPSGATE_SAFETY_1}", header: X-Sig}}
        expect: {json: {'headers."X-Sig"': "== nope"}}
  - id: IDEM
    title: signed idempotency requests (each answer echoes its own signature)
    kind: idempotency
    mutating: true
    request:
      method: POST
      path: /idem
      json: {amount: 1}
      sign: {hmac_sha256: {secret: "${OPSGATE_SAFETY_1}", header: X-Idem-Sig}}
    other_json: {amount: 2}
"""


def test_signing_secrets_and_signatures_reach_no_output(bare_catalog: pytest.Pytester) -> None:
    """SigV4 and HMAC signing: the secrets (from ``${VAR}`` or literal), the signature headers
    and every signature sent stay out of every output, even when a server echoes them back
    into the body, a Set-Cookie and the failure messages."""
    sent: list[str] = []

    @Request.application
    def echo(request: Request) -> Response:
        signed = []
        for name in ("Authorization", "Stripe-Signature", "X-Webhook-Auth", "X-Sig",
                     "X-Idem-Sig"):
            if name in request.headers:
                value = request.headers[name]
                signed += [value, value.rpartition("=")[2] if name != "X-Webhook-Auth"
                           else value]
        sent.extend(signed)
        answer = {"headers": dict(request.headers), "body": request.get_data(as_text=True),
                  "note": " ".join(signed)}  # under a name no redaction rule knows
        response = Response(json.dumps(answer), content_type="application/json")
        response.set_cookie("echo", request.headers.get("Authorization", "none"))
        return response

    environment = bare_catalog.path / "signing.yaml"
    values = {f"{VAR}{i}": secret for i, secret in enumerate(SIGNING_SECRETS)}
    report_dir = bare_catalog.path / "out"
    with serve(echo) as url, mock.patch.dict(os.environ, values):
        environment.write_text(SIGNED_ENVIRONMENT.replace("BASE", url), encoding="utf-8")
        result = bare_catalog.runpytest_subprocess(
            "checks", "--env", str(environment), "--report-dir", str(report_dir), "-rA",
            "-l", "--allow-mutations", "--log-level", "DEBUG", *LEAN_PYTEST, timeout=120)
    assert result.ret == 1, result.stdout.str()[-3000:]
    (run_folder,) = report_dir.iterdir()
    outputs = outputs_of(result, run_folder)
    document = json.loads(outputs["evidence.json"])
    assert {check["outcome"] for check in document["checks"]} == {"failed"}, document
    # four requests, then the idempotency check's first, replay and conflict (the replay
    # answer differs: it echoes a fresh signature), each signed: header and signature
    assert len(sent) == 14, sent
    found = leaks([*SIGNING_SECRETS, "literal-Hmac-Secret-99"], outputs)
    found += [f"{where}: signature {value!r}" for value in sent
              for where, text in outputs.items() if value in text]
    assert not found, f"{len(found)} leaks:\n" + "\n".join(found[:20])


# ---------------------------------------------------------------- output pytest does not capture
UNCAPTURED = '''\
"""A hand-written check that writes the secrets to the terminal every way it can."""

import base64
import json
import logging
import os
import subprocess
import sys
from urllib.parse import quote

SECRETS = [os.environ[f"OPSGATE_SAFETY_{index}"] for index in range(3)]


def test_writes_secrets_everywhere(opsgate):
    noisy = logging.getLogger("noisy")
    noisy.addHandler(logging.StreamHandler(sys.__stderr__))
    for secret in SECRETS:
        forms = [secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode(),
                 json.dumps(secret)]
        print("print:", *forms)
        print("stderr:", *forms, file=sys.stderr)
        sys.__stdout__.write(f"real stdout: {secret}\\n")
        sys.__stdout__.flush()
        noisy.error("logged %s", secret)
        os.write(1, f"fd 1: {secret}\\n".encode())
        os.write(2, f"fd 2: {secret}\\n".encode())
        subprocess.run([sys.executable, "-c", "import sys; print(sys.argv[1])", secret],
                       check=True)
    assert False, "failing shows what the check wrote"
'''
UNCAPTURED_ENVIRONMENT = """\
name: uncaptured
targets:
  http:
    api:
      base_url: http://127.0.0.1:9
      headers: {X-Api-Key: "${OPSGATE_SAFETY_0}", X-Note: "${OPSGATE_SAFETY_1}",
                Authorization: "Bearer ${OPSGATE_SAFETY_2}"}
checks: []
"""
CAPTURE_MODES = {"-s": ("-s",), "--capture=no": ("--capture=no",),
                 "--capture=tee-sys": ("--capture=tee-sys",), "--capture=sys": ("--capture=sys",),
                 "-p no:capture": ("-p", "no:capture")}


def run_uncaptured(bare_catalog: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path]:
    """The check above, run with ``args``; pytest's result and the report folder."""
    (bare_catalog.path / "checks" / "test_uncaptured.py").write_text(UNCAPTURED)
    environment = bare_catalog.path / "uncaptured.yaml"
    environment.write_text(UNCAPTURED_ENVIRONMENT, encoding="utf-8")
    values = {f"{VAR}{index}": secret for index, secret in enumerate(FIXED_SECRETS)}
    out = bare_catalog.path / "out"
    with mock.patch.dict(os.environ, values):
        result = bare_catalog.runpytest_subprocess(
            "checks", "--env", str(environment), "--report-dir", str(out), "-rA",
            *LEAN_PYTEST, *args, timeout=120)
    return result, out


def test_captured_output_reaches_the_terminal_redacted(bare_catalog: pytest.Pytester) -> None:
    """With pytest's default capture, all the check wrote is shown, and redacted."""
    result, out = run_uncaptured(bare_catalog)
    assert result.ret == 1, result.stdout.str()[-3000:]
    (run_folder,) = out.iterdir()
    outputs = outputs_of(result, run_folder)
    for written in ("print:", "stderr:", "real stdout:", "logged", "fd 1:", "fd 2:"):
        assert f"{written} {MASK}" in outputs["stdout"], (written, result.stdout.str()[-3000:])
    found = leaks(FIXED_SECRETS, outputs)
    assert not found, f"{len(found)} leaks:\n" + "\n".join(found[:20])


@pytest.mark.parametrize("mode", list(CAPTURE_MODES))
def test_uncaptured_output_is_refused(bare_catalog: pytest.Pytester, mode: str) -> None:
    """``-s`` and the other modes that let a check write to the terminal directly are a usage
    error before anything runs: no secret reaches the terminal in any form."""
    result, out = run_uncaptured(bare_catalog, *CAPTURE_MODES[mode])
    output = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    found = leaks(FIXED_SECRETS, output)
    assert not found, f"{mode}: {len(found)} leaks:\n" + "\n".join(found[:20])
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    errors = [line for line in output["stderr"].splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "opsgate:" in errors[0] and "capture" in errors[0], output
    assert "Traceback" not in output["stdout"] + output["stderr"]
    assert not out.exists(), "a run folder was made: something ran"
