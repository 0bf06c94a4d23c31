"""The plugin end to end with pytester: exit statuses, the files a run writes, ids, secrets."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from opsgate.evidence import verify

REPO = Path(__file__).resolve().parents[2]
SECRET = "Sup3r-S3cret-Value!"


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path):
    """A copy of the catalog beside a SQLite database with a few rows."""
    shutil.copytree(REPO / "checks", pytester.path / "checks")
    database = tmp_path / "app.sqlite"
    with sqlite3.connect(database) as conn:
        conn.execute("create table items (id integer primary key, price integer)")
        conn.executemany("insert into items (price) values (?)", [(1,), (2,), (-3,)])
    return pytester, database


def write_env(pytester: pytest.Pytester, name: str, database: Path, checks: str,
              http: str = "http://127.0.0.1:9") -> Path:
    path = pytester.path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
targets:
  http:
    api:
      base_url: {http}
      headers: {{Authorization: "Bearer ${{OPSGATE_TEST_SECRET}}"}}
      timeout: 2s
  databases:
    main: {{url: "sqlite:///{database}"}}
checklists:
  gate: {{description: the gate}}
  empty: {{description: nothing in it}}
checks:
{checks}""")
    return path


PASSING = """\
  - {id: S1, title: one row at least, kind: sql, scalar: "select count(*) from items",
     expect: ">= 1", checklists: [gate]}
"""
FAILING = """\
  - {id: S2, title: no negative prices, kind: sql, checklists: [gate],
     violations: "select id, price from items where price < 0"}
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("checks", "--report-dir", str(pytester.path / "out"),
                                         *args)


def run_dir(pytester: pytest.Pytester) -> Path:
    (directory,) = (pytester.path / "out").iterdir()
    return directory


@pytest.fixture(autouse=True)
def _secret(monkeypatch):
    monkeypatch.setenv("OPSGATE_TEST_SECRET", SECRET)


def test_passing_gate_exits_0_and_writes_report_evidence_junit(suite):
    pytester, database = suite
    env = write_env(pytester, "staging", database, PASSING)
    result = run(pytester, "--env", str(env), "--checklist", "gate", "--incident", "INC-7",
                 "--operator", "alice")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*opsgate verdict: PASS*", "report:*report.html",
                                 "evidence:*evidence.json"])
    directory = run_dir(pytester)
    document = json.loads((directory / "evidence.json").read_text())
    assert verify(document)
    assert document["verdict"] == "PASS"
    assert (document["environment"], document["checklist"], document["incident"],
            document["operator"]) == ("staging", "gate", "INC-7", "alice")
    (check,) = document["checks"]
    assert check["id"] == "S1" and check["outcome"] == "passed" and check["observed"] == 3
    assert check["evidence"]["asked"]["sql"] == "select count(*) from items"
    html = (directory / "report.html").read_text()
    assert "Gate verdict: PASS" in html and "INC-7" in html
    assert '<h1 id="title">opsgate gate PASS: ' in html  # the title carries the final verdict
    assert (directory / "junit.xml").is_file()
    assert len((directory / "evidence.jsonl").read_text().splitlines()) == 1


def test_failed_check_blocks_with_observed_value(suite):
    pytester, database = suite
    env = write_env(pytester, "staging", database, PASSING + FAILING)
    result = run(pytester, "--env", str(env))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*opsgate verdict: BLOCKED*",
                                 "*FAILED*staging:S2*violations (1) == 0*"])
    document = json.loads((run_dir(pytester) / "evidence.json").read_text())
    assert document["verdict"] == "BLOCKED" and document["blocking"] == ["staging:S2"]
    failed = document["checks"][1]
    assert failed["outcome"] == "failed"
    assert failed["evidence"]["seen"]["rows"] == [[3, -3]] or \
        failed["evidence"]["seen"]["rows"] == [{"id": 3, "price": -3}]
    html = (run_dir(pytester) / "report.html").read_text()
    assert "violations (1) == 0" in html
    assert '<h1 id="title">opsgate gate BLOCKED: ' in html


def test_unreachable_target_is_an_error_not_a_failure(suite):
    pytester, database = suite
    checks = PASSING + '  - {id: H1, title: health, kind: http, request: {path: /health}}\n'
    env = write_env(pytester, "staging", database, checks)
    result = run(pytester, "--env", str(env))
    assert result.ret == 1
    result.assert_outcomes(passed=1, errors=1)
    document = json.loads((run_dir(pytester) / "evidence.json").read_text())
    assert document["checks"][1]["outcome"] == "error"
    assert document["counts"] == {"passed": 1, "failed": 0, "error": 1, "not_run": 0}
    junit = (run_dir(pytester) / "junit.xml").read_text()
    assert "<error" in junit and "could not measure" in junit


def test_checklist_that_selects_nothing_is_blocked(suite):
    pytester, database = suite
    env = write_env(pytester, "staging", database, PASSING)
    result = run(pytester, "--env", str(env), "--checklist", "empty")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*opsgate verdict: BLOCKED*", "no check was selected"])


def test_unknown_checklist_is_a_usage_error(suite):
    pytester, database = suite
    env = write_env(pytester, "staging", database, PASSING)
    result = run(pytester, "--env", str(env), "--checklist", "closure-x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown checklist 'closure-x'*checklists there: empty, gate*"])


def test_invalid_environment_is_a_usage_error_without_traceback(suite):
    pytester, database = suite
    env = write_env(pytester, "staging", database, PASSING + "  - {id: S1, title: x}\n")
    result = run(pytester, "--env", str(env))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*staging.yaml:*checks[[]1[]]*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_catalog_without_env_is_a_usage_error(suite):
    pytester, _ = suite
    result = pytester.runpytest_subprocess("checks")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no environment given*--env NAME*"])


def test_several_environments_parametrize_every_check(suite):
    pytester, database = suite
    first = write_env(pytester, "staging", database, PASSING)
    second = write_env(pytester, "production", database, PASSING)
    result = run(pytester, "--env", str(first), "--env", str(second), "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*test_check[[]staging:S1[]] PASSED*",
                                 "*test_check[[]production:S1[]] PASSED*"])
    document = json.loads((run_dir(pytester) / "evidence.json").read_text())
    assert [c["environment"] for c in document["checks"]] == ["staging", "production"]


def test_secret_never_reaches_any_output(suite, echo_server):
    pytester, database = suite
    checks = ('  - id: H1\n    title: echo\n    kind: http\n'
              '    request: {path: /echo, params: {count: "9"}}\n'
              '    expect: {json: {count: "< 3"}}\n')
    env = write_env(pytester, "staging", database, checks, http=echo_server)
    result = run(pytester, "--env", str(env), "-rA", "--log-level", "DEBUG")
    assert result.ret == 1
    outputs = [result.stdout.str(), result.stderr.str()]
    outputs += [p.read_text() for p in run_dir(pytester).iterdir() if p.is_file()]
    assert all(SECRET not in text for text in outputs)
    document = json.loads((run_dir(pytester) / "evidence.json").read_text())
    seen = document["checks"][0]["evidence"]["seen"]
    assert "[REDACTED]" in seen["body_excerpt"]
    assert document["checks"][0]["evidence"]["asked"]["headers"]["Authorization"] == "[REDACTED]"


ENGINE = ("pydantic", "httpx", "sqlalchemy", "pglast", "psycopg", "jmespath", "promql_parser")
LIGHT = '''\
import sys


def test_engine_is_not_imported():
    engine = sorted(name for name in sys.modules
                    if name.split(".")[0] in {ENGINE!r}
                    or (name.startswith("opsgate.") and name != "opsgate.plugin"))
    assert engine == [], engine
    assert "opsgate.plugin" in sys.modules
'''


def test_pytest_without_env_does_not_import_the_engine(pytester):
    """Other projects' pytest runs in the same environment load only opsgate's options."""
    pytester.makepyfile(test_light=LIGHT.replace("{ENGINE!r}", repr(set(ENGINE))))
    result = pytester.runpytest_subprocess("test_light.py")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*1 passed*"])


def test_handwritten_check_without_env_is_a_usage_error(pytester):
    """Without ``--env`` the gate's fixtures are not loaded; asking for one says what to do."""
    pytester.makepyfile(test_hand="def test_status(opsgate):\n    pass\n")
    result = pytester.runpytest_subprocess("test_hand.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()  # at collection
    result.stdout.fnmatch_lines(["*UsageError: opsgate: no environment given*--env NAME*"])
    assert "fixture 'opsgate' not found" not in result.stdout.str()


GC_PROBE = '''
import atexit, gc, os

def _write(line):
    with open(os.environ["GC_PROBE_FILE"], "a") as handle:
        handle.write(line + "\\n")

import pytest

@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):  # after every other plugin's, pytest's own collection too
    _write(f"unconfigure {gc.get_freeze_count()}")

atexit.register(lambda: _write(f"exit {gc.get_freeze_count()}"))
'''


def test_loaded_gate_stays_frozen_through_pytests_final_collections(suite, monkeypatch):
    """The gate's long-lived objects are kept out of the cyclic collector's reach until
    pytest's own full collections at the end of the run have passed (they would walk them
    all again), and are given back afterwards."""
    pytester, database = suite
    probe = pytester.path / "gc-probe.txt"
    monkeypatch.setenv("GC_PROBE_FILE", str(probe))
    pytester.makeconftest(GC_PROBE)
    env = write_env(pytester, "gc", database, PASSING)
    result = run(pytester, "--env", str(env))
    assert result.ret == 0, result.stdout.str()
    counts = dict(line.split() for line in probe.read_text().splitlines())
    assert int(counts["unconfigure"]) > 10_000, counts
    assert int(counts["exit"]) == 0, counts
