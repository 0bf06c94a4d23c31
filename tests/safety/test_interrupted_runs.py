"""Guarantee 7: an interrupted run never leaves a report that looks finished, never a PASS.

Each test starts ``python -m pytest checks --env FILE --report-dir DIR`` as a real process
(``subprocess.Popen``) against a local HTTP server, with a couple of quick checks and a long
``kind: window`` check, waits until the quick checks are recorded in ``evidence.jsonl`` and then
interrupts it: Ctrl-C (SIGINT), SIGTERM, SIGKILL, or an internal error raised by a hook. The run
must end within a few seconds of the interruption (probe threads are daemons and the window
stops sampling when the run stops) and leave files that say INCOMPLETE, or no finished-looking
file at all; the check that never ran must be in the evidence and in junit.xml as not run
(a failure, so the suite is red), and the terminal must end with the verdict and the paths.
Two runs started together must write two folders, a normal run must leave no
temporary file behind, and after SIGKILL at random moments every evidence.jsonl line must be
complete JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import yaml
from werkzeug.wrappers import Request, Response

from opsgate.evidence import verify
from tests.support.http import serve

REPO = Path(__file__).resolve().parents[2]
PLUGINS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist",
           "-p", "no:anyio")
#: An interrupted run must be gone this soon after its signal.
PROMPT = 5.0
#: How long a run may take to start and record its quick checks on a busy two-core machine.
START = 30.0
FINAL_NAMES = ("report.html", "evidence.json", "junit.xml", "triage.json")
PASS_MARKS = (b'"verdict": "PASS"', b'"verdict":"PASS"', b"Gate verdict: PASS")
QUICK = ("Q1", "Q2")


# ---------------------------------------------------------------- the target
@pytest.fixture
def api() -> Iterator[str]:
    """A local HTTP API answering ``{"count": 3}``; ``?sleep=S`` answers after S seconds."""

    @Request.application
    def app(request: Request) -> Response:
        time.sleep(float(request.args.get("sleep", 0)))
        return Response(json.dumps({"count": 3}), content_type="application/json")

    with serve(app) as url:
        yield url


def quick(ident: str, path: str = "/") -> dict[str, Any]:
    return {"id": ident, "title": f"quick {ident}", "kind": "http", "request": {"path": path},
            "expect": {"status": "== 200", "json": {"count": "== 3"}}}


def window(seconds: int = 30) -> dict[str, Any]:
    return {"id": "W", "title": f"{seconds} s window", "kind": "window",
            "sample": {"http": {"request": {"path": "/"}, "value": "count"}},
            "window": f"{seconds}s", "interval": "1s", "expect": "non_increasing"}


# ---------------------------------------------------------------- a run as a real process
@dataclass
class Live:
    """One ``python -m pytest checks ...`` process and where it writes."""

    process: subprocess.Popen[bytes]
    reports: Path
    output: Path
    started: float

    def folder(self) -> Path | None:
        """The run's own folder, once it exists."""
        folders = [p for p in self.reports.iterdir() if p.is_dir()] if self.reports.is_dir() \
            else []
        assert len(folders) <= 1, f"one run, several folders: {folders}"
        return folders[0] if folders else None

    def text(self) -> str:
        return self.output.read_text(errors="replace")[-5000:]

    def wait_for_records(self, idents: tuple[str, ...] = QUICK) -> Path:
        """Wait until ``idents`` are in evidence.jsonl; the run folder."""
        end = time.monotonic() + START
        while time.monotonic() < end:
            assert self.process.poll() is None, f"the run ended early:\n{self.text()}"
            folder = self.folder()
            if folder is not None and set(idents) <= {r["id"] for r in jsonl(folder)}:
                return folder
            time.sleep(0.05)
        raise AssertionError(f"{idents} were never recorded:\n{self.text()}")

    def interrupt(self, signum: int) -> float:
        """Send ``signum``; the seconds until the process was gone."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 30 s after signal {signum}:\n"
                                 f"{self.text()}") from None
        return time.monotonic() - sent

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def prepare(work: Path, api: str, checks: list[dict[str, Any]], conftest: str = "") -> Path:
    """A folder with the catalog (plus ``conftest`` code) and an environment file."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "checks").exists():
        shutil.copytree(REPO / "checks", work / "checks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        if conftest:
            with open(work / "checks" / "conftest.py", "a") as handle:
                handle.write("\n\n" + conftest)
    environment = {"name": "it", "targets": {"http": {"api": {"base_url": api}}},
                   "checks": checks}
    path = work / "it.yaml"
    path.write_text(yaml.safe_dump(environment, sort_keys=False))
    return path


def launch(work: Path, environment: Path, name: str = "run") -> Live:
    """Start the gate as a real process in ``work``, its output in ``work/<name>.out``."""
    reports = work / "reports"
    output = work / f"{name}.out"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    with open(output, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "checks", "--env", str(environment),
             "--report-dir", str(reports), *PLUGINS],
            cwd=work, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env)
    return Live(process, reports, output, time.monotonic())


@contextlib.contextmanager
def running(work: Path, environment: Path, name: str = "run") -> Iterator[Live]:
    """``launch`` that always kills the process at the end."""
    live = launch(work, environment, name)
    try:
        yield live
    finally:
        live.stop()


# ---------------------------------------------------------------- reading what a run left
def jsonl(folder: Path) -> list[dict[str, Any]]:
    """The records of evidence.jsonl; every line must be complete JSON."""
    path = folder / "evidence.jsonl"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), f"evidence.jsonl ends in a torn line: {text[-200:]!r}"
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise AssertionError(f"evidence.jsonl line {number} is not complete JSON: "
                                 f"{line[:200]!r}") from exc
    return records


def evidence(folder: Path) -> dict[str, Any]:
    path = folder / "evidence.json"
    assert path.is_file(), f"no evidence.json in {folder}: {sorted(os.listdir(folder))}"
    document = json.loads(path.read_text())
    assert verify(document), "evidence.json's sha256 does not match its content"
    return document


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["id"]: check for check in document["checks"]}


def assert_no_pass_anywhere(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            content = path.read_bytes()
            for mark in PASS_MARKS:
                assert mark not in content, f"{path.name} says PASS"


def assert_junit_red(folder: Path, why: str) -> None:
    """junit.xml lists the check that never ran as a failure saying why: CI shows red."""
    path = folder / "junit.xml"
    assert path.is_file(), f"no junit.xml: {sorted(os.listdir(folder))}"
    suite = ElementTree.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert int(suite.get("failures")) + int(suite.get("errors")) >= 1, ElementTree.tostring(
        suite)[:2000]
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert "test_check[it:W]" in cases, f"W is not in junit.xml: {sorted(cases)}"
    failure = cases["test_check[it:W]"].find("failure")
    assert failure is not None, ElementTree.tostring(cases["test_check[it:W]"])
    assert failure.get("message") == f"not run: {why}", failure.get("message")


def assert_verdict_printed(folder: Path, live: Live, verdict: str = "INCOMPLETE") -> None:
    """The terminal ends with the verdict and where the run's files are."""
    text = live.text()
    assert f"opsgate verdict: {verdict}" in text, text
    assert f"report:   {folder / 'report.html'}" in text, text
    assert f"evidence: {folder / 'evidence.json'}" in text, text


def assert_incomplete(folder: Path, live: Live, why: str) -> dict[str, Any]:
    """report.html and evidence.json both exist and say INCOMPLETE, and the check that never
    ran is in them as not run, saying ``why``; the evidence document."""
    report = folder / "report.html"
    assert report.is_file(), f"no report.html: {sorted(os.listdir(folder))}\n{live.text()}"
    html = report.read_text(errors="replace")
    assert "Gate verdict: INCOMPLETE" in html, "report.html does not say INCOMPLETE"
    document = evidence(folder)
    assert document["verdict"] == "INCOMPLETE", document["verdict"]
    assert_no_pass_anywhere(folder)
    records = by_id(document)
    for ident in QUICK:
        assert records[ident]["outcome"] == "passed", records[ident]
    assert "W" in records, f"the check that never ran is not in the evidence: {sorted(records)}"
    assert records["W"]["outcome"] == "not_run", records["W"]
    assert records["W"]["message"] == f"not run: {why}", records["W"]["message"]
    assert records["W"]["reason"] == "interrupted", records["W"]
    assert "W" in {r["id"] for r in jsonl(folder)}, "W is not in evidence.jsonl"
    assert f"not run: {why}" in html, "report.html does not say why W did not run"
    return document


# ---------------------------------------------------------------- (a), (b) SIGINT, SIGTERM
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_an_incomplete_report(tmp_path, api, signum):
    environment = prepare(tmp_path, api, [quick("Q1"), quick("Q2"), window(30)])
    with running(tmp_path, environment) as live:
        folder = live.wait_for_records()
        took = live.interrupt(signum)
        print(f"{signal.Signals(signum).name}: gone {took:.2f}s after the signal, "
              f"{time.monotonic() - live.started:.2f}s after start, exit "
              f"{live.process.returncode}")
    assert took < PROMPT, f"the run took {took:.1f}s to end after the signal:\n{live.text()}"
    assert live.process.returncode == pytest.ExitCode.INTERRUPTED, live.text()
    why = {signal.SIGINT: "the run was interrupted (Ctrl-C)",
           signal.SIGTERM: "the run was interrupted (SIGTERM)"}[signum]
    assert_incomplete(folder, live, why)
    assert_junit_red(folder, why)
    assert_verdict_printed(folder, live)


# ---------------------------------------------------------------- (c) SIGKILL
def test_killed_run_leaves_no_finished_looking_file(tmp_path, api):
    environment = prepare(tmp_path, api, [quick("Q1"), quick("Q2"), window(30)])
    with running(tmp_path, environment) as live:
        folder = live.wait_for_records()
        took = live.interrupt(signal.SIGKILL)
    assert took < PROMPT
    assert live.process.returncode == -signal.SIGKILL
    names = sorted(os.listdir(folder))
    for name in FINAL_NAMES:
        assert name not in names, f"{name} exists after SIGKILL: {names}"
    assert set(names) <= {"evidence.jsonl", ".report.html.partial", ".junit.xml.partial",
                          ".evidence.json.tmp", ".triage.json.tmp"}, names
    assert_no_pass_anywhere(folder)
    records = jsonl(folder)
    assert [r["id"] for r in records] == list(QUICK), records
    assert all(r["outcome"] == "passed" for r in records)


# ---------------------------------------------------------------- (d) internal error
BOOM = '''
def pytest_runtest_logreport(report):
    """A broken hook in the middle of the run: pytest ends with INTERNAL_ERROR."""
    if report.when == "teardown" and report.nodeid.endswith("[it:Q2]"):
        raise RuntimeError("boom: a hook broke in the middle of the run")
'''


def test_internal_error_leaves_an_incomplete_report(tmp_path, api):
    environment = prepare(tmp_path, api, [quick("Q1"), quick("Q2"), window(30)], BOOM)
    with running(tmp_path, environment) as live:
        try:
            live.process.wait(timeout=START)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not end after its internal error:\n"
                                 f"{live.text()}") from None
        took = time.monotonic() - live.started
    print(f"internal error: the run ended after {took:.2f}s, exit {live.process.returncode}")
    assert live.process.returncode == pytest.ExitCode.INTERNAL_ERROR, live.text()
    assert "boom: a hook broke" in live.text()
    assert took < 15, f"the run waited {took:.1f}s: for its 30 s window?"
    folder = live.folder()
    assert folder is not None
    report = folder / "report.html"
    assert report.is_file(), f"no report.html: {sorted(os.listdir(folder))}\n{live.text()}"
    assert "Gate verdict: INCOMPLETE" in report.read_text(errors="replace")
    document = evidence(folder)
    assert document["verdict"] == "INCOMPLETE"
    assert_no_pass_anywhere(folder)
    records = by_id(document)
    assert records["Q1"]["outcome"] == "passed"
    why = "the run was interrupted by an internal error"
    assert records["W"]["outcome"] == "not_run" and records["W"]["message"] == f"not run: {why}"
    assert_junit_red(folder, why)
    assert_verdict_printed(folder, live)


# ---------------------------------------------------------------- (e) runs side by side
def test_two_runs_started_together_write_two_folders(tmp_path, api):
    checks = [quick("Q1"), quick("Q2"), quick("Q3")]
    for attempt in range(3):
        work = tmp_path / f"attempt{attempt}"
        environment = prepare(work, api, checks)
        # both at the start of a second: their run ids are taken about a second later
        time.sleep(1 - time.time() % 1)
        with running(work, environment, "one") as one, running(work, environment, "two") as two:
            for live in (one, two):
                live.process.wait(timeout=60)
                assert live.process.returncode == 0, live.text()
        folders = sorted(p for p in (work / "reports").iterdir() if p.is_dir())
        assert len(folders) == 2, folders
        stamps = {re.match(r"^(\d{8}T\d{6}Z)-", p.name).group(1) for p in folders}
        if len(stamps) == 1:
            break
    else:
        raise AssertionError("three attempts never started two runs in the same second")
    print(f"same second, attempt {attempt + 1}: {[p.name for p in folders]}")
    documents = [evidence(folder) for folder in folders]
    assert documents[0]["run_id"] != documents[1]["run_id"]
    for folder, document in zip(folders, documents, strict=True):
        assert folder.name.startswith(document["run_id"])
        assert document["verdict"] == "PASS"
        assert [r["id"] for r in jsonl(folder)] == ["Q1", "Q2", "Q3"], "lines mixed up"
        assert (folder / "report.html").is_file() and (folder / "junit.xml").is_file()
        assert document["run_id"] in (folder / "report.html").read_text()


# ---------------------------------------------------------------- (f) nothing truncated
def test_normal_run_leaves_no_temporary_file(tmp_path, api):
    environment = prepare(tmp_path, api, [quick("Q1"), quick("Q2")])
    with running(tmp_path, environment) as live:
        live.process.wait(timeout=60)
    assert live.process.returncode == 0, live.text()
    folder = live.folder()
    assert folder is not None
    names = sorted(os.listdir(folder))
    assert names == ["evidence.json", "evidence.jsonl", "junit.xml", "report.html"], names
    assert evidence(folder)["verdict"] == "PASS"
    assert [r["id"] for r in jsonl(folder)] == ["Q1", "Q2"]


def test_sigkill_at_random_moments_never_tears_a_line(tmp_path, api):
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    many = [quick(f"Q{n:02d}", f"/?sleep={chance.choice((0, 0.05, 0.1, 0.2))}")
            for n in range(40)]
    print(f"seed {seed}")
    for attempt in range(5):
        work = tmp_path / f"kill{attempt}"
        environment = prepare(work, api, [*many, window(30)])
        delay = chance.uniform(0.0, 1.5)
        with running(work, environment) as live:
            end = time.monotonic() + START
            while live.folder() is None or not (live.folder() / "evidence.jsonl").exists():
                assert time.monotonic() < end and live.process.poll() is None, live.text()
                time.sleep(0.02)
            time.sleep(delay)
            live.interrupt(signal.SIGKILL)
        folder = live.folder()
        assert folder is not None
        records = jsonl(folder)
        print(f"kill {attempt + 1}: {delay:.2f}s after the folder appeared, "
              f"{len(records)} complete lines")
        names = sorted(os.listdir(folder))
        for name in FINAL_NAMES:
            assert name not in names, f"{name} exists after SIGKILL: {names}"
        assert_no_pass_anywhere(folder)
        assert len({r["id"] for r in records}) == len(records), "a check recorded twice"
