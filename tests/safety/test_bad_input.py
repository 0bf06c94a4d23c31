"""Guarantee 8, bad input: every problem of an environment file or of the command line is one
message naming the file, the line and the key (and what to do), pytest's usage-error status
(4), and no traceback anywhere.

Each case runs ``pytest checks --env FILE`` in a subprocess on a small valid environment with
one thing broken, and asserts the exit status, that exactly one problem line is printed and
what it says, that no ``Traceback`` / ``INTERNALERROR`` reaches stdout or stderr, and that no
run folder was made (nothing ran). Hostile YAML (a file that is not UTF-8, an alias that
contains itself, an alias bomb, a list as a mapping key, very deep nesting) must be refused
the same way, and quickly.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")
USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

BASE = """\
name: bad
targets:
  databases:
    main: {url: "sqlite:///app.sqlite"}
  prometheus: {url: "http://127.0.0.1:9"}
checklists:
  gate: {description: the gate}
checks:
  - {id: S1, title: rows, kind: sql, scalar: "select count(*) from items", expect: ">= 0"}
"""
#: The first line after BASE, where each case's broken check starts.
LINE = BASE.count("\n") + 1


def check(extra: str) -> str:
    """One more check line after BASE (it sits on line ``LINE``)."""
    return BASE + "  - {id: S2, title: broken, kind: sql, " + extra + "}\n"


@dataclass(frozen=True)
class Case:
    """An environment file with one problem, and the one line that must report it."""

    text: str | bytes
    expected: str  # a regular expression for the problem line; FILE stands for the file
    args: tuple[str, ...] = ()
    environ: dict[str, str] = field(default_factory=dict)


CASES = {
    "malformed YAML": Case(
        BASE + '  - {id: S2, title: b, kind: sql, scalar: "select 1", expect: "== 1"\n'
        "  - {id: S3, title: c}\n",
        rf"FILE:{LINE + 1}: the file is not valid YAML \(.+\)"),
    "wrong type: a duration": Case(
        check('scalar: "select 1", expect: "== 1", timeout: fast'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.timeout: 'fast' is not a duration: write .*'30s'"),
    "wrong type: an integer": Case(
        check('scalar: "select 1", expect: "== 1", sample: many'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.sample: .*should be a valid integer"),
    "wrong type: a boolean": Case(
        BASE.replace("name: bad\n", "name: bad\nproduction: maybe\n"),
        r"FILE:2: production: .*should be a valid boolean"),
    "unknown key in a check": Case(
        check('scalar: "select 1", expct: "== 1", expect: "== 1"'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.expct: unknown key; remove it or check its "
        r"spelling"),
    "unknown key at the top": Case(
        BASE + "chekcs: []\n",
        rf"FILE:{LINE}: chekcs: unknown key; remove it or check its spelling"),
    "unknown key in a target": Case(
        BASE.replace('{url: "http://127.0.0.1:9"}', '{url: "http://127.0.0.1:9", timout: 5s}'),
        r"FILE:5: targets\.prometheus\.timout: unknown key; remove it"),
    "unknown kind": Case(
        BASE + '  - {id: S2, title: b, kind: sqll, scalar: "select 1", expect: "== 1"}\n',
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.kind: unknown kind; use one of http, sql, "),
    "bad PromQL": Case(
        BASE + '  - {id: P1, title: p, kind: promql, query: "rate(http_requests_total[5m]", '
        'expect: "< 1"}\n',
        rf"FILE:{LINE}: checks\[1\] \(P1\)\.query: The PromQL query .* does not parse: "
        r".*; fix the expression"),
    "SQL that does not parse": Case(
        check('scalar: "selec count(*) from items", expect: "== 1"'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.scalar: The SQL does not parse .*\"selec\".*"
        r"fix the syntax"),
    "SQL that is not a read": Case(
        check('violations: "delete from items returning id"'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.violations: DELETE is not allowed because it "
        r"changes data; configure a single read-only query"),
    "unknown checklist": Case(
        BASE, r"unknown checklist 'nope' in environment bad \(FILE\); checklists there: gate",
        args=("--checklist", "nope")),
    "unknown checklist named by a check": Case(
        check('scalar: "select 1", expect: "== 1", checklists: [nope]'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.checklists\[0\]: unknown checklist 'nope'; "
        r"declare it under 'checklists:'"),
    "unknown database": Case(
        check('database: other, scalar: "select 1", expect: "== 1"'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.database: unknown database 'other'; declared "
        r"under 'targets\.databases': main"),
    "missing variable": Case(
        BASE + "  - id: S2\n    title: b\n    kind: sql\n"
        "    scalar: \"select '${OPSGATE_UNSET_VARIABLE}'\"\n    expect: \"exists\"\n",
        rf"FILE:{LINE + 3}: checks\[1\] \(S2\)\.scalar: environment variable "
        r"OPSGATE_UNSET_VARIABLE is not set \(set it, e\.g\. export OPSGATE_UNSET_VARIABLE=\.\.\., "
        r"or write \$\$\{ for a literal \$\{\)$"),
    "missing variable in a request header": Case(
        BASE.replace("  prometheus:", '  http:\n    api: {base_url: "http://127.0.0.1:9"}\n'
                     "  prometheus:")
        + "  - id: H1\n    title: h\n    kind: http\n    request:\n      path: /\n"
        '      headers:\n        X-Api-Key: "Key ${OPSGATE_UNSET_VARIABLE}"\n'
        '    expect: {status: "== 200"}\n',
        rf"FILE:{LINE + 8}: checks\[1\] \(H1\)\.request\.headers\.X-Api-Key: environment "
        r"variable OPSGATE_UNSET_VARIABLE is not set \(set it"),
    "not a mapping": Case("- targets\n- checks\n", r"FILE:1: the file must be a mapping"),
    "empty file": Case("", r"FILE:1: the file (is empty|must be a mapping)"),
    "check id used twice": Case(
        BASE + '  - {id: S1, title: again, kind: sql, scalar: "select 1", expect: "== 1"}\n',
        rf"FILE:{LINE}: checks\[1\] \(S1\)\.id: duplicate check id 'S1' \(also checks\[0\]\); "
        r"ids must be unique"),
    "key written twice": Case(
        check('scalar: "select 1", expect: "== 1", expect: "== 2"'),
        rf"FILE:{LINE}: checks\[1\]( \(S2\))?\.expect: the key appears twice; keep one"),
    "condition that does not parse": Case(
        check('scalar: "select 1", expect: "lower than 3"'),
        rf"FILE:{LINE}: checks\[1\] \(S2\)\.expect: 'lower than 3' is not a condition: "
        r"write a comparison such as"),
    "run deadline that is not a duration": Case(
        BASE, r"--run-deadline: 'nonsense' is not a duration: write .*'15m'",
        args=("--run-deadline", "nonsense")),
}
#: How long a refused run may take (pytest starts in about 1 s here).
QUICK = 10.0


@dataclass
class Refusal:
    """What a refused run printed."""

    ret: int | pytest.ExitCode
    stdout: str
    stderr: str
    folder: Path

    @property
    def output(self) -> str:
        return self.stdout + "\n" + self.stderr


def refuse(pytester: pytest.Pytester, text: str | bytes, *args: str,
           env_arg: str | None = None, timeout: float = 60.0) -> tuple[Refusal, Path]:
    """Run the catalog on an environment file holding ``text``; the result and the file."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
        shutil.copytree(REPO / "fixtures", pytester.path / "fixtures")
    path = pytester.path / "broken.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess("checks", "--env", env_arg or str(path),
                                           "--report-dir", str(out), *QUIET, *args,
                                           timeout=timeout)
    return Refusal(result.ret, result.stdout.str(), result.stderr.str(), out), path


def problem_lines(refusal: Refusal) -> list[str]:
    """The lines that report a problem (pytest prints them under ``ERROR:``)."""
    lines = [line.strip() for line in refusal.stderr.splitlines() if line.strip()]
    lines = [line.removeprefix("ERROR:").strip() for line in lines]
    return [line for line in lines if line != "opsgate: the environment is not valid:"]


def assert_refused(refusal: Refusal) -> None:
    """Usage error, no traceback, nothing ran."""
    assert refusal.ret == USAGE_ERROR, (refusal.ret, refusal.output)
    for marker in ("Traceback", "INTERNALERROR", "File \""):
        assert marker not in refusal.output, refusal.output
    assert not refusal.folder.exists(), "a run folder was made: something ran"


@pytest.mark.parametrize("name", list(CASES))
def test_each_problem_is_one_message_with_file_line_and_key(pytester, monkeypatch, name):
    case = CASES[name]
    monkeypatch.delenv("OPSGATE_UNSET_VARIABLE", raising=False)
    refusal, path = refuse(pytester, case.text, *case.args)
    assert_refused(refusal)
    lines = problem_lines(refusal)
    assert len(lines) == 1, f"expected one problem line, got {len(lines)}:\n{refusal.stderr}"
    expected = case.expected.replace("FILE", re.escape(str(path)))
    assert re.search(expected, lines[0]), f"\n{lines[0]}\ndoes not match\n{expected}"


def test_unknown_environment_name_lists_the_known_ones(pytester):
    refusal, _ = refuse(pytester, BASE, env_arg="staging-typo")
    assert_refused(refusal)
    (line,) = problem_lines(refusal)
    assert re.search(r"--env staging-typo: unknown environment \(known environments: .*demo"
                     r".*\); give a name from that list or a path to a YAML file", line), line


def test_every_problem_of_a_file_is_reported_at_once(pytester):
    """Five problems in one file: five lines, each naming its own line and key."""
    text = BASE.replace("name: bad\n", "name: bad\nproduction: maybe\n") + (
        '  - {id: S2, title: b, kind: sql, scalar: "select 1", expct: "== 1", expect: "== 1"}\n'
        '  - {id: S3, title: c, kind: sql, scalar: "selec 1", expect: "== 1"}\n'
        '  - {id: S4, title: d, kind: sql, scalar: "select 1", expect: "lower than 3"}\n'
        '  - {id: P1, title: p, kind: promql, query: "rate(x[5m]", expect: "< 1"}\n')
    refusal, path = refuse(pytester, text)
    assert_refused(refusal)
    lines = problem_lines(refusal)
    first = LINE + 1
    expected = [(2, "production"), (first, r"checks\[1\] \(S2\)\.expct"),
                (first + 1, r"checks\[2\] \(S3\)\.scalar"),
                (first + 2, r"checks\[3\] \(S4\)\.expect"), (first + 3, r"checks\[4\] \(P1\)"
                                                             r"\.query")]
    assert len(lines) == len(expected), refusal.stderr
    for number, key in expected:
        pattern = rf"^{re.escape(str(path))}:{number}: {key}: "
        assert any(re.search(pattern, line) for line in lines), (pattern, lines)


HOSTILE = {
    "not UTF-8": (BASE.encode() + b"  # caf\xe9 \xff\xfe\n", r"UTF-8"),
    "alias that contains itself": (BASE + "loop: &loop [*loop]\n", rf"FILE:{LINE}"),
    "list as a mapping key": (BASE + "? [a, b]\n: c\n", rf"FILE:{LINE}"),
    "nesting 5000 deep": (BASE + "deep: " + "[" * 5000 + "]" * 5000 + "\n", r"FILE:\d+"),
    "alias bomb": (BASE + "".join(
        f"b{n}: &b{n} [{', '.join([f'*b{n - 1}'] * 9) if n else ', '.join(['x'] * 9)}]\n"
        for n in range(8)), r"FILE:\d+"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_yaml_is_refused_quickly_without_traceback(pytester, name):
    """A file that trips the YAML reader is a bad file like any other: one line, exit 4."""
    text, expected = HOSTILE[name]
    try:
        refusal, path = refuse(pytester, text, timeout=QUICK)
    except pytester.TimeoutExpired:
        pytest.fail(f"{name}: the run was still loading the file after {QUICK:g} s",
                    pytrace=False)
    assert_refused(refusal)
    lines = problem_lines(refusal)
    assert len(lines) >= 1, refusal.stderr
    assert re.search(expected.replace("FILE", re.escape(str(path))), lines[0]), lines
