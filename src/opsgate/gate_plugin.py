"""The gate: everything opsgate does in a pytest run given ``--env``.

``opsgate.plugin`` (the ``pytest11`` entry point, options only) imports and registers this
module in ``pytest_configure`` when ``--env`` is given, so that pytest without it never imports
the engine. ``pytest checks --env demo --checklist closure-dlq`` loads the environment,
parametrizes the catalog's test with each selected check, starts every probe at once, writes
report.html, evidence.json and junit.xml to a new folder under ``reports/`` and exits 0 for
PASS, 1 for BLOCKED. The work is done by ``session`` (the run), ``scheduler`` (probes),
``evaluate`` (judgement), ``evidence`` and ``report`` (output) and ``gate`` (verdict); this
module only connects them to pytest's hooks.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import pytest

from opsgate.errors import ProbeError
from opsgate.evaluate import evaluate
from opsgate.evidence import check_record
from opsgate.guard import refusal
from opsgate.observation import utcnow
from opsgate.outcome import Outcome
from opsgate.plugin import PROCESS_STREAMS
from opsgate.redaction import Redactor
from opsgate.runner import CheckCase, ProbeRunner
from opsgate.scheduler import RunDeadlinePassed
from opsgate.session import (
    RunState,
    case_of,
    quiet_and_redact_logging,
    restore_logging,
    start,
)
from opsgate.streams import redact_with

STATE = pytest.StashKey[RunState]()
CASE_RECORD = pytest.StashKey[dict]()
PREVIOUS_SIGTERM = pytest.StashKey[Any]()
STOPPED = pytest.StashKey[str]()
VERDICT_SHOWN = pytest.StashKey[bool]()
HTML_REPORT = pytest.StashKey[Any]()  # pytest-html's report data, to retitle at the end


class CouldNotMeasure(Exception):
    """Raised in a check's setup when its probe could not measure: pytest shows ERROR."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so the run still writes an INCOMPLETE report."""


# ---------------------------------------------------------------- start-up
def pytest_configure(config: pytest.Config) -> None:
    """Called when ``opsgate.plugin`` registers this module (pytest replays the historic
    ``pytest_configure`` for it), before pytest-html and JUnit read their paths."""
    refuse_uncaptured_output(config)
    state = start(config)
    config.stash[STATE] = state
    config.pluginmanager.register(state, "opsgate-run")
    config.pluginmanager.register(RedactReports(state.redactor), "opsgate-redact")
    config.pluginmanager.register(RunEnding(config), "opsgate-ending")
    _replace_metadata(config, state)
    quiet_and_redact_logging(state.redactor)
    redact_with(config.stash.get(PROCESS_STREAMS, []), state.redactor)
    config.stash[PREVIOUS_SIGTERM] = _handle_sigterm()


def refuse_uncaptured_output(config: pytest.Config) -> None:
    """Only pytest's fd capture sees everything a check writes (prints, logging handlers,
    ``os.write``, subprocesses) and hands it to the redactor; any other mode lets a check
    write a secret straight to the terminal, so it is a usage error with ``--env``."""
    method = getattr(config.option, "capture", None)
    if config.pluginmanager.get_plugin("capturemanager") is None:
        given = "-p no:capture"
    elif method == "fd":
        return
    else:
        given = "-s / --capture=no" if method == "no" else f"--capture={method}"
    raise pytest.UsageError(
        f"opsgate: {given} would let checks write secrets to the terminal unredacted; run "
        "without it (pytest's default --capture=fd shows a failing check's output, redacted; "
        "add -rA to see every check's)")


def _handle_sigterm() -> Any:
    """Turn SIGTERM into an interruption pytest finishes cleanly (reports marked INCOMPLETE)."""

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated("terminated by SIGTERM")

    try:
        return signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals alone
        return None


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if state.files is not None:
        state.files.finish(config)
    if not config.stash.get(VERDICT_SHOWN, False) and not config.option.collectonly:
        _show_verdict(config, state)  # an ending pytest gives no terminal summary
    state.close()
    restore_logging()
    previous = config.stash.get(PREVIOUS_SIGTERM, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _replace_metadata(config: pytest.Config, state: RunState) -> None:
    """The report's environment table shows the run's facts, not the process environment."""
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:  # pytest-html without pytest-metadata: nothing to replace
        return
    metadata = config.stash.get(metadata_key, None)
    if metadata is not None:
        pytest_metadata(metadata, config)


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata: dict[str, Any], config: pytest.Config) -> None:
    """The run's facts replace the interpreter and plugin versions pytest-html would show."""
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
    wanted = {"opsgate_check", "opsgate"} & set(metafunc.fixturenames)
    state = metafunc.config.stash.get(STATE, None)
    if not wanted or state is None:
        return
    if "opsgate_check" in wanted:
        metafunc.parametrize("opsgate_check", state.cases, ids=[c.ident for c in state.cases])
    if "opsgate" in wanted:
        environments = state.info.environments
        metafunc.parametrize("opsgate", environments, indirect=True,
                             ids=[env.name for env in environments])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the placeholder pytest makes for an empty parameter set: no check is no item."""
    if config.stash.get(STATE, None) is None:
        return
    empty = [item for item in items
             if "opsgate_check" in getattr(item, "fixturenames", ()) and case_of(item) is None]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]


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
    problems = state.verify_targets([case for item in session.items
                                     if (case := case_of(item)) is not None])
    if problems:
        pytest.exit("opsgate: stopped before any check ran:\n  " + "\n  ".join(problems),
                    returncode=pytest.ExitCode.USAGE_ERROR)
    for item in session.items:
        case = case_of(item)
        if case is not None and refusal(case, state.allow_mutations) is None:
            state.scheduler.submit(item.nodeid, case)


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def opsgate_check(request: pytest.FixtureRequest) -> CheckCase:
    """The configured check this test item runs (parametrized by the plugin)."""
    return request.param


@pytest.fixture
def opsgate_outcome(request: pytest.FixtureRequest, opsgate_check: CheckCase) -> Outcome:
    """Probe and judge the check; a check that could not measure errors here, in setup."""
    state: RunState = request.config.stash[STATE]
    nodeid = request.node.nodeid
    outcome, record = run_case(state, opsgate_check, nodeid, request.config)
    request.node.stash[CASE_RECORD] = record
    state.records[nodeid] = record
    if outcome.status == "not_run":
        pytest.skip(outcome.message)
    if outcome.status == "error":
        raise CouldNotMeasure(outcome.message)
    return outcome


@pytest.fixture
def opsgate(request: pytest.FixtureRequest) -> Any:
    """Probes for a hand-written check, once per ``--env`` (see ``opsgate.handwritten``)."""
    from opsgate.handwritten import HandProbes

    state: RunState = request.config.stash[STATE]
    return HandProbes(state.runner, request.param)


@pytest.fixture
def opsgate_runner(request: pytest.FixtureRequest) -> ProbeRunner:
    """The run's probe runner, for hand-written checks that call probes themselves."""
    state: RunState = request.config.stash[STATE]
    return state.runner


def run_case(state: RunState, case: CheckCase, nodeid: str,
             config: pytest.Config | None = None) -> tuple[Outcome, dict[str, Any]]:
    """Probe, judge and record one configured check."""
    started = utcnow()
    observation, asked, seen = None, {}, {}
    refused = refusal(case, state.allow_mutations)
    try:
        if refused is not None:
            outcome = Outcome("not_run", refused, reason="refused")
        else:
            from opsgate.progress import WaitReporter

            on_wait = WaitReporter(config) if config is not None else None
            observation = state.scheduler.result(nodeid, case, on_wait)
            _learn_secrets(state.redactor, observation.fields.get("secrets", ()))
            asked, seen = observation.asked, observation.seen
            outcome = evaluate(case.check, observation)
    except RunDeadlinePassed as exc:
        outcome = Outcome("not_run", f"not run: {exc}", reason="run_deadline")
    except ProbeError as exc:
        _learn_secrets(state.redactor, getattr(exc, "secrets", ()))
        asked, seen = exc.asked, exc.seen
        outcome = Outcome("error", str(exc), reason=exc.reason)
    except Exception as exc:  # a bug in a probe must not look like a measurement
        outcome = Outcome("error", f"internal error while probing: {type(exc).__name__}: {exc}",
                          reason="internal")
    started = state.scheduler.started_at(nodeid) or started  # the probe's start, not the wait's
    record = check_record(
        ident=case.check.id, environment=case.env.name, check=case.check, outcome=outcome,
        observation=observation, asked=asked, seen=seen, started_at=started,
        finished_at=utcnow(), nodeid=nodeid, redactor=state.redactor, advisory=case.advisory)
    outcome.message = record["message"]
    return outcome, record


def _learn_secrets(redactor: Redactor, values: Any) -> None:
    """Secrets a probe met on the way (a token a flow captured) are redacted from then on."""
    for value in values or ():
        redactor.add(str(value))


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


def _redact_report(report: Any, redactor: Redactor) -> None:
    """Every text a report carries: failure, captured output, xfail reason, properties, extras."""
    if report.longrepr is not None:
        if isinstance(report.longrepr, tuple):
            path, line, message = report.longrepr
            report.longrepr = (path, line, redactor.text(str(message)))
        else:
            report.longrepr = redactor.text(str(report.longrepr))
    report.sections = [(title, redactor.text(content)) for title, content in report.sections]
    if hasattr(report, "wasxfail"):
        report.wasxfail = redactor.text(str(report.wasxfail))
    if getattr(report, "user_properties", None):
        report.user_properties = [(name, redactor.text(str(value)))
                                  for name, value in report.user_properties]
    if getattr(report, "extras", None):
        report.extras = [extra if extra.get("format_type") == "image"
                         or not isinstance(extra.get("content"), str)
                         else {**extra, "content": redactor.text(extra["content"])}
                         for extra in report.extras]


class RedactReports:
    """Redacts every report and warning before the terminal, JUnit and pytest-html read it.

    This runs at ``logreport`` (after pytest-html added its extras) and for collection reports.
    """

    def __init__(self, redactor: Redactor):
        self.redactor = redactor

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        _redact_report(report, self.redactor)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        _redact_report(report, self.redactor)

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any, when: str, nodeid: str,
                                location: Any) -> None:
        text = str(warning_message.message)
        redacted = self.redactor.text(text)
        if redacted != text:
            try:
                warning_message.message = warning_message.category(redacted)
            except Exception:  # a warning class with another signature
                warning_message.message = UserWarning(redacted)


# ---------------------------------------------------------------- endings
class RunEnding:
    """Remembers why a run ended early (Ctrl-C, SIGTERM, ``pytest.exit``, internal error)."""

    def __init__(self, config: pytest.Config):
        self.config = config

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        if isinstance(excinfo.value, Terminated):
            self._stopped("the run was interrupted (SIGTERM)")
        elif isinstance(excinfo.value, KeyboardInterrupt):
            self._stopped("the run was interrupted (Ctrl-C)")
        else:
            said = str(getattr(excinfo.value, "msg", "") or "pytest.exit").splitlines()
            self._stopped(f"the run was stopped ({said[0] if said else 'pytest.exit'})")

    def pytest_internalerror(self, excrepr: Any) -> None:
        self._stopped("the run was interrupted by an internal error")

    def _stopped(self, why: str) -> None:
        self.config.stash.setdefault(STOPPED, why)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Record what never ran, decide the verdict, write evidence.json, and make the exit
    status the gate's. Runs before JUnit and pytest-html write their files."""
    state = session.config.stash.get(STATE, None)
    if state is None or session.config.option.collectonly:
        return
    finished = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                              pytest.ExitCode.NO_TESTS_COLLECTED)
    if not state.preflight.get("problems"):
        if not finished:
            why = session.config.stash.get(STOPPED, "the run did not finish")
            _report_not_run(session, state, f"not run: {why}", "interrupted")
        elif state.unreported(session.items):  # -x, --maxfail, pytest.exit(returncode=0)
            _report_not_run(session, state, f"not run: {_stopped_early(session)}",
                            "stopped_early")
    decision = state.finish(finished)
    if finished:
        session.exitstatus = (pytest.ExitCode.OK if decision.passed
                              else pytest.ExitCode.TESTS_FAILED)


def _stopped_early(session: pytest.Session) -> str:
    """Why a run that ended normally left checks unrun."""
    why = session.config.stash.get(STOPPED, None)
    said = session.shouldfail or session.shouldstop  # -x and --maxfail / a plugin's stop
    if why is None and isinstance(said, str):
        why = f"the run stopped early ({said})"
    return why or "the run stopped early"


def _report_not_run(session: pytest.Session, state: RunState, message: str,
                    reason: str) -> None:
    """Items that never ran become not-run records and failed reports, so that JUnit,
    pytest-html and the terminal show them red instead of leaving them out."""
    from pytest_html import extras

    from opsgate.report import evidence_block

    items = state.unreported(session.items)
    records = state.not_run(items, message, reason)
    reports = []
    for item, record in zip(items, records, strict=True):
        shown = [extras.html(evidence_block(record))] if case_of(item) is not None else []
        reports += [_made_report(item.nodeid, item.location, "call", message, shown),
                    _made_report(item.nodeid, item.location, "teardown")]
    if not reports:  # nothing left out, but the suite must still not look finished
        location = ("opsgate", None, "opsgate run")
        reports = [_made_report("opsgate::run", location, "call", message),
                   _made_report("opsgate::run", location, "teardown")]
    for report in reports:
        # a broken plugin must not stop the evidence from being written
        with contextlib.suppress(Exception):
            session.config.hook.pytest_runtest_logreport(report=report)


def _made_report(nodeid: str, location: Any, when: str, message: str | None = None,
                 shown: list[Any] | None = None) -> pytest.TestReport:
    """A report for a check that never ran: failed at ``call`` with ``message``."""
    now = utcnow().timestamp()
    report = pytest.TestReport(nodeid, location, {}, "failed" if message else "passed",
                               message, when, start=now, stop=now, user_properties=[],
                               opsgate_not_run=True)
    report.extras = shown or []
    return report


@pytest.hookimpl(specname="pytest_sessionfinish", wrapper=True, trylast=True)
def pytest_sessionfinish_publish(session: pytest.Session, exitstatus: int):
    """After pytest-html and JUnit have written, publish their files under the final names."""
    result = yield
    state = session.config.stash.get(STATE, None)
    if state is not None and state.files is not None:
        state.files.finish(session.config)
    return result


@pytest.hookimpl(optionalhook=True)
def pytest_html_report_title(report: Any) -> None:
    """Asked at session start, before any verdict: INCOMPLETE until the summary retitles it."""
    state = report.config.stash.get(STATE, None)
    if state is not None:
        report.config.stash[HTML_REPORT] = report
        _title(report, state)


def _title(report: Any, state: RunState) -> None:
    verdict = state.decision.verdict if state.decision else "INCOMPLETE"
    report.title = (f"opsgate gate {verdict}: {state.info.environment_label} / "
                    f"{state.info.checklist_label}")


@pytest.hookimpl(optionalhook=True)
def pytest_html_results_summary(prefix: list[str], summary: list[str], postfix: list[str],
                                session: pytest.Session) -> None:
    """The verdict banner first; the title now carries the verdict (pytest-html renders both
    right after this hook)."""
    state = session.config.stash.get(STATE, None)
    report = session.config.stash.get(HTML_REPORT, None)
    if state is not None and report is not None:
        _title(report, state)
    if state is not None and state.document is not None:
        from opsgate.report import verdict_banner

        prefix.insert(0, verdict_banner(state.document))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state.decision is not None:
        _show_verdict(config, state)


def _show_verdict(config: pytest.Config, state: RunState) -> None:
    """The verdict, why, what did not pass and where the files are, once per run: from the
    terminal summary, or at unconfigure when pytest gives none (an internal error)."""
    from opsgate.report import terminal_lines

    config.stash[VERDICT_SHOWN] = True
    verdict = state.decision.verdict if state.decision else "INCOMPLETE"
    lines = terminal_lines(state.document or {}) if state.document else [
        "the run did not finish: what did not run cannot pass"]
    if state.files is not None:
        directory = state.files.directory
        lines += [f"report:   {state.files.report}",
                  f"evidence: {state.evidence_path or directory / 'evidence.jsonl'}",
                  f"folder:   {directory}"]
    writer = config.pluginmanager.get_plugin("terminalreporter")
    if writer is None:
        import sys

        sys.stderr.write("\n".join([f"opsgate verdict: {verdict}", *lines]) + "\n")
        return
    colour = {"PASS": {"green": True}, "BLOCKED": {"red": True}}.get(verdict, {"yellow": True})
    writer.write_sep("=", f"opsgate verdict: {verdict}", bold=True, **colour)
    for line in lines:
        writer.write_line(line)
