"""opsgate's pytest plugin (entry point ``pytest11``): options, one test per configured check,
evidence on every report, and the gate verdict as the exit status.

``pytest checks --env demo --checklist closure-dlq`` loads the environment, parametrizes the
catalog's test with each selected check, writes report.html, evidence.json and junit.xml to a
new folder under ``reports/`` and exits 0 for PASS, 1 for BLOCKED.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from opsgate.config.loader import LoadedEnvironment, load_environment, resolve_environment_path
from opsgate.deadline import Deadline
from opsgate.errors import ConfigError, ProbeError
from opsgate.evaluate import evaluate
from opsgate.evidence import EvidenceLog, check_record, iso, plain_record
from opsgate.gate import Decision, decide
from opsgate.observation import utcnow
from opsgate.outcome import Outcome
from opsgate.redaction import Redactor
from opsgate.run import RunInfo, default_operator, suite_revision
from opsgate.runner import CheckCase, ProbeRunner
from opsgate.scheduler import RunDeadlinePassed, Scheduler

STATE = pytest.StashKey["RunState"]()
CASE_RECORD = pytest.StashKey[dict]()


class CouldNotMeasure(Exception):
    """Raised in a check's setup when its probe could not measure: pytest shows ERROR."""


class RunState:
    """Everything one opsgate run keeps between hooks."""

    def __init__(self, info: RunInfo, directory: Path | None, redactor: Redactor,
                 run_deadline: float | None = None):
        self.info = info
        self.directory = directory
        self.redactor = redactor
        self.runner = ProbeRunner(info.run_id)
        self.scheduler = Scheduler(self.runner, workers=_workers(info), run_deadline=(
            Deadline(run_deadline) if run_deadline else None))
        self.log = EvidenceLog(directory) if directory else None
        self.selected = 0
        self.records: dict[str, dict[str, Any]] = {}
        self.phases: dict[str, dict[str, Any]] = {}
        self.decision: Decision | None = None
        self.document: dict[str, Any] | None = None
        self.evidence_path: Path | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """At an item's teardown its record is final: append it to the evidence."""
        phases = self.phases.setdefault(report.nodeid, {"started": utcnow()})
        phases[report.when] = report
        if report.when != "teardown":
            return
        record = self.records.get(report.nodeid) or _plain_test_record(self, report.nodeid,
                                                                        phases)
        record = _with_pytest_outcome(record, phases)
        self.records[report.nodeid] = record
        if self.log is not None:
            self.log.add(record)

    def cases(self) -> list[CheckCase]:
        """The configured checks selected by the checklist, in file order, per environment."""
        chosen = self.info.checklist
        return [CheckCase(env, check) for env in self.info.environments
                for check in env.environment.checks
                if chosen is None or chosen in check.checklists]


# ---------------------------------------------------------------- options and start-up
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opsgate", "opsgate: runbook checks against live environments")
    group.addoption("--env", action="append", default=[], metavar="NAME_OR_PATH",
                    help="environment to check: a name under fixtures/environments/ or a YAML "
                         "path; repeat to check several (ids carry the environment name)")
    group.addoption("--checklist", default=None, metavar="NAME",
                    help="run only the checks of this checklist (default: every check)")
    group.addoption("--incident", default=None, metavar="ID",
                    help="incident id recorded in the report and evidence")
    group.addoption("--operator", default=None, metavar="NAME",
                    help="who runs the gate (default: $OPSGATE_OPERATOR or the login name)")
    group.addoption("--report-dir", default="reports", metavar="DIR",
                    help="where each run writes its own folder of report.html, evidence.json "
                         "and junit.xml (default: reports/)")
    group.addoption("--run-deadline", default=None, metavar="DURATION", type=_duration_option,
                    help="stop measuring after this long (e.g. 20m): checks not finished by "
                         "then are not run, and the gate is BLOCKED (default: none)")


def _duration_option(value: str) -> float:
    from opsgate.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise pytest.UsageError(f"--run-deadline: {exc}") from None


def _workers(info: RunInfo) -> int:
    """Threads enough for every target's concurrency bound to be used at once."""
    total = 0
    for env in info.environments:
        targets = env.environment.targets
        total += sum(t.concurrency for t in targets.http.values())
        total += sum(t.max_connections for t in targets.databases.values())
        total += targets.prometheus.concurrency if targets.prometheus else 0
    return max(4, min(total, 256))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("env"):
        return
    environments = _load_environments(config)
    checklist = config.getoption("checklist")
    _require_checklist(environments, checklist)
    info = RunInfo(environments, checklist, config.getoption("incident"),
                   config.getoption("operator") or default_operator(),
                   suite_revision(config.rootpath))
    redactor = Redactor(secret for env in environments for secret in env.secrets)
    for env in environments:
        for value in _sensitive_literals(env, redactor):
            redactor.add(value)
    directory = None if config.option.collectonly else _make_run_directory(config, info)
    state = RunState(info, directory, redactor, config.getoption("run_deadline"))
    config.stash[STATE] = state
    config.pluginmanager.register(state, "opsgate-run")
    _quiet_and_redact_logging(redactor)


def _load_environments(config: pytest.Config) -> list[LoadedEnvironment]:
    loaded, problems = [], []
    for given in config.getoption("env"):
        try:
            loaded.append(load_environment(resolve_environment_path(given, config.rootpath)))
        except ConfigError as exc:
            problems.extend(exc.problems)
    names = [env.name for env in loaded]
    if len(set(names)) != len(names):
        problems.append(f"--env: two environments share a name ({', '.join(names)}); "
                        "environment names must differ")
    if problems:
        raise pytest.UsageError("opsgate: the environment is not valid:\n  "
                                + "\n  ".join(problems))
    return loaded


def _require_checklist(environments: list[LoadedEnvironment], checklist: str | None) -> None:
    if checklist is None:
        return
    missing = [env for env in environments if checklist not in env.environment.checklists]
    if missing:
        known = sorted({name for env in environments for name in env.environment.checklists})
        raise pytest.UsageError(
            f"opsgate: unknown checklist {checklist!r} in environment "
            f"{', '.join(env.name for env in missing)} ({missing[0].path}); "
            f"checklists there: {', '.join(known) or 'none'}")


def _sensitive_literals(env: LoadedEnvironment, redactor: Redactor) -> list[str]:
    """Literal values of sensitive headers written in the file (not only ``${VAR}``)."""
    targets = env.environment.targets
    header_sets = [t.headers for t in targets.http.values()]
    if targets.prometheus:
        header_sets.append(targets.prometheus.headers)
    header_sets += [getattr(getattr(c, "request", None), "headers", {}) or {}
                    for c in env.environment.checks]
    return [value for headers in header_sets for name, value in headers.items()
            if value and redactor.is_sensitive(name)]


def _make_run_directory(config: pytest.Config, info: RunInfo) -> Path:
    base = Path(config.getoption("report_dir"))
    if not base.is_absolute():
        base = config.rootpath / base
    directory = base / info.directory_name()
    directory.mkdir(parents=True, exist_ok=False)
    if not getattr(config.option, "htmlpath", None):
        config.option.htmlpath = str(directory / "report.html")
        config.option.self_contained_html = True
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(directory / "junit.xml")
    return directory


def _quiet_and_redact_logging(redactor: Redactor) -> None:
    """httpx logs full URLs at INFO; every log record is redacted before any handler sees it."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            record.msg, record.args = redactor.text(record.getMessage()), None
        except Exception:  # a broken log call must not break the run
            record.msg, record.args = "[unformattable log record]", None
        return record

    factory.opsgate_previous = previous  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    state.scheduler.close()
    state.runner.close()
    factory = logging.getLogRecordFactory()
    if hasattr(factory, "opsgate_previous"):
        logging.setLogRecordFactory(factory.opsgate_previous)


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    """The report's environment table shows the run's facts, not the process environment."""
    state = config.stash.get(STATE, None)
    if state is None:
        return
    info = state.info
    metadata.clear()
    metadata.update({
        "Environment": info.environment_label, "Checklist": info.checklist_label,
        "Incident": info.incident or "-", "Operator": info.operator,
        "Suite revision": info.revision, "Run id": info.run_id,
        "Configuration": ", ".join(f"{env.path.name} sha256:{env.fingerprint[:12]}"
                                   for env in info.environments),
    })


# ---------------------------------------------------------------- collection
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "opsgate_check" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(STATE, None)
    if state is None:
        raise pytest.UsageError(
            "opsgate: no environment given; run `pytest checks --env NAME` "
            "(a name under fixtures/environments/ or a path to a YAML file)")
    cases = state.cases()
    metafunc.parametrize("opsgate_check", cases, ids=[case.ident for case in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the placeholder pytest makes for an empty parameter set: no check is no item."""
    if config.stash.get(STATE, None) is None:
        return
    empty = [item for item in items if _is_empty_parametrization(item)]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]


def _is_empty_parametrization(item: pytest.Item) -> bool:
    return "opsgate_check" in getattr(item, "fixturenames", ()) and _case_of(item) is None


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None:
        state.selected = len(session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start every selected check's probe now; each test then waits only for its own."""
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    for item in session.items:
        case = _case_of(item)
        if case is not None:
            state.scheduler.submit(item.nodeid, case)


def _case_of(item: pytest.Item) -> CheckCase | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("opsgate_check") if callspec is not None else None
    return case if isinstance(case, CheckCase) else None


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def opsgate_check(request: pytest.FixtureRequest) -> CheckCase:
    """The configured check this test item runs (parametrized by the plugin)."""
    return request.param


@pytest.fixture
def opsgate_outcome(request: pytest.FixtureRequest, opsgate_check: CheckCase) -> Outcome:
    """Probe and judge the check; a check that could not measure errors here, in setup."""
    state: RunState = request.config.stash[STATE]
    try:
        outcome, record = run_case(state, opsgate_check, request.node.nodeid)
    except RunDeadlinePassed as exc:
        pytest.skip(f"not run: {exc}")
    request.node.stash[CASE_RECORD] = record
    state.records[request.node.nodeid] = record
    if outcome.status == "error":
        raise CouldNotMeasure(outcome.message)
    return outcome


@pytest.fixture
def opsgate_runner(request: pytest.FixtureRequest) -> ProbeRunner:
    """The run's probe runner, for hand-written checks that call probes themselves."""
    state = request.config.stash.get(STATE, None)
    if state is None:
        raise pytest.UsageError("opsgate: hand-written checks need --env")
    return state.runner


def run_case(state: RunState, case: CheckCase, nodeid: str) -> tuple[Outcome, dict[str, Any]]:
    """Probe, judge and record one configured check."""
    started = utcnow()
    observation, asked, seen = None, {}, {}
    try:
        observation = state.scheduler.result(nodeid, case)
        asked, seen = observation.asked, observation.seen
        outcome = evaluate(case.check, observation)
    except ProbeError as exc:
        asked, seen = exc.asked, exc.seen
        outcome = Outcome("error", str(exc), reason=exc.reason)
    except (RunDeadlinePassed, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug in a probe must not look like a measurement
        outcome = Outcome("error", f"internal error while probing: {type(exc).__name__}: {exc}",
                          reason="internal")
    record = check_record(
        ident=case.check.id, environment=case.env.name, check=case.check, outcome=outcome,
        observation=observation, asked=asked, seen=seen, started_at=started,
        finished_at=utcnow(), nodeid=nodeid, redactor=state.redactor)
    outcome.message = record["message"]
    return outcome, record


# ---------------------------------------------------------------- reports
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    state = item.config.stash.get(STATE, None)
    if state is None:
        return
    report = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(CouldNotMeasure):
        report.longrepr = f"could not measure: {call.excinfo.value}"
    _redact_report(report, state.redactor)
    record = item.stash.get(CASE_RECORD, None)
    if record is not None and _is_final_phase(report):
        from pytest_html import extras

        from opsgate.report import evidence_block

        report.extras = [*getattr(report, "extras", []), extras.html(evidence_block(record))]


def _is_final_phase(report: pytest.TestReport) -> bool:
    return report.when == "call" or (report.when == "setup" and not report.passed)


def _redact_report(report: pytest.TestReport, redactor: Redactor) -> None:
    if report.longrepr is not None:
        if isinstance(report.longrepr, tuple):
            path, line, message = report.longrepr
            report.longrepr = (path, line, redactor.text(str(message)))
        else:
            report.longrepr = redactor.text(str(report.longrepr))
    report.sections = [(title, redactor.text(content)) for title, content in report.sections]


def _plain_test_record(state: RunState, nodeid: str, phases: dict[str, Any]) -> dict[str, Any]:
    setup, call = phases.get("setup"), phases.get("call")
    outcome = _pytest_outcome(setup, call)
    failing = next((r for r in (setup, call) if r is not None and not r.passed), None)
    message = str(failing.longrepr) if failing is not None and failing.longrepr else outcome
    return plain_record(nodeid=nodeid, environment=state.info.environment_label,
                       outcome=outcome, message=message, started_at=phases["started"],
                       finished_at=utcnow(), redactor=state.redactor)


def _with_pytest_outcome(record: dict[str, Any], phases: dict[str, Any]) -> dict[str, Any]:
    """pytest has the last word: a skip or a teardown error cannot stay ``passed``."""
    outcome = _pytest_outcome(phases.get("setup"), phases.get("call"), phases.get("teardown"))
    if outcome == record["outcome"] or record["outcome"] in ("failed", "error"):
        return record
    return {**record, "outcome": outcome, "message": f"{record['message']} (pytest: {outcome})"}


def _pytest_outcome(*reports: Any) -> str:
    present = [r for r in reports if r is not None]
    if any(r.skipped for r in present):
        return "not_run"
    if any(r.failed and r.when != "call" for r in present):
        return "error"
    if any(r.failed for r in present):
        return "failed"
    return "passed" if any(r.when == "call" for r in present) else "not_run"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Decide the verdict, write evidence.json, and make the exit status the gate's."""
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    finished = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                              pytest.ExitCode.NO_TESTS_COLLECTED)
    records = list(state.records.values())
    state.decision = decide(records, selected=state.selected, finished=finished)
    state.document = _document(state, records, finished_at=utcnow())
    if state.log is not None:
        state.evidence_path = state.log.finish(state.document)
    if finished:
        session.exitstatus = (pytest.ExitCode.OK if state.decision.passed
                              else pytest.ExitCode.TESTS_FAILED)


def _document(state: RunState, records: list[dict[str, Any]], finished_at) -> dict[str, Any]:
    info, decision = state.info, state.decision
    assert decision is not None
    return {
        "format": "opsgate.evidence/1",
        "verdict": decision.verdict,
        "reason": decision.reason,
        "blocking": decision.blocking,
        "counts": decision.counts,
        "environment": info.environment_label,
        "environments": [env.name for env in info.environments],
        "checklist": info.checklist_label,
        "incident": info.incident,
        "operator": info.operator,
        "run_id": info.run_id,
        "started_at": iso(info.started_at),
        "finished_at": iso(finished_at),
        "revision": info.revision,
        "configuration": [{"environment": env.name, "file": str(env.path),
                           "sha256": env.fingerprint, "production": env.environment.production}
                          for env in info.environments],
        "selected": state.selected,
        "checks": records,
    }


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    state = report.config.stash.get(STATE, None)
    if state is not None:
        report.title = (f"opsgate gate: {state.info.environment_label} / "
                        f"{state.info.checklist_label}")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None and state.document is not None:
        from opsgate.report import verdict_banner

        prefix.insert(0, verdict_banner(state.document))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or state.decision is None:
        return
    decision, write = state.decision, terminalreporter.write_line
    colour = {"PASS": {"green": True}, "BLOCKED": {"red": True}}.get(decision.verdict,
                                                                     {"yellow": True})
    terminalreporter.write_sep("=", f"opsgate verdict: {decision.verdict}", bold=True, **colour)
    counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in decision.counts.items())
    write(f"environment {state.info.environment_label} | checklist "
          f"{state.info.checklist_label} | {counts}")
    write(decision.reason)
    for record in state.records.values():
        if record["outcome"] != "passed":
            write(f"  {record['outcome'].upper():8} {record['environment']}:{record['id']}  "
                  f"{record['message']}")
    if state.directory is not None:
        write(f"report:   {state.directory / 'report.html'}")
        write(f"evidence: {state.evidence_path or state.directory / 'evidence.jsonl'}")
