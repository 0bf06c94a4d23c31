"""One opsgate run inside a pytest session: its facts, probes, records and verdict.

``start(config)`` loads and validates every ``--env`` before any check runs (a bad file is a
usage error listing every problem), builds the redactor from the run's secrets, makes the run
folder and the scheduler. ``RunState`` then keeps each check's evidence record as pytest
reports it, appends it to evidence.jsonl, and decides the verdict at the end.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from opsgate.artifacts import RunFiles
from opsgate.config.loader import LoadedEnvironment, load_environment, resolve_environment_path
from opsgate.deadline import Deadline
from opsgate.errors import ConfigError
from opsgate.evidence import EvidenceLog, check_record, iso, plain_record, seal, write_atomic
from opsgate.gate import Decision, decide
from opsgate.observation import utcnow
from opsgate.redaction import Redactor
from opsgate.run import RunInfo, default_operator, suite_revision
from opsgate.runner import CheckCase, ProbeRunner
from opsgate.scheduler import Scheduler
from opsgate.selection import coverage, select

DECISIONS = {"PASS": "proceed: every required check passed",
             "BLOCKED": "hold: do not proceed until the blocking checks pass",
             "INCOMPLETE": "rerun: the run did not finish"}


class RunState:
    """Everything one opsgate run keeps between hooks."""

    def __init__(self, info: RunInfo, files: RunFiles | None, redactor: Redactor, *,
                 allow_mutations: bool = False, run_deadline: float | None = None):
        self.info = info
        self.files = files
        self.redactor = redactor
        self.allow_mutations = allow_mutations
        self.runner = ProbeRunner(info.run_id)
        self.cases = select(info.environments, info.checklist)
        self.scheduler = Scheduler(self.runner, workers=_workers(info, self.cases), run_deadline=(
            Deadline(run_deadline) if run_deadline else None))
        self.log = EvidenceLog(files.directory) if files else None
        self.selected = 0
        self.records: dict[str, dict[str, Any]] = {}
        self.phases: dict[str, dict[str, Any]] = {}
        self.decision: Decision | None = None
        self.document: dict[str, Any] | None = None
        self.evidence_path: Path | None = None
        self.preflight: dict[str, Any] = {}

    def verify_targets(self, cases: list[CheckCase]) -> list[str]:
        """Identity and database roles, before any check; the problems that stop the run."""
        from opsgate.preflight import preflight

        result = preflight(self.runner, self.info.environments, cases)
        problems = [self.redactor.text(problem) for problem in result.problems]
        self.preflight = self.redactor.data({"facts": result.facts, "problems": problems})
        return problems

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """A selected check dropped with ``-k`` or ``-m`` did not run: it blocks the gate."""
        from opsgate.outcome import Outcome

        for item in items:
            case = case_of(item)
            if case is None or item.nodeid in self.records:
                continue
            now = utcnow()
            record = check_record(
                ident=case.check.id, environment=case.env.name, check=case.check,
                outcome=Outcome("not_run", "not run: deselected on the command line",
                                reason="deselected"),
                observation=None, asked={}, seen={}, started_at=now, finished_at=now,
                nodeid=item.nodeid, redactor=self.redactor, advisory=case.advisory)
            self.records[item.nodeid] = record
            if self.log is not None:
                self.log.add(record)

    def unreported(self, items: list[pytest.Item]) -> list[pytest.Item]:
        """Collected items with neither a record nor a teardown report: they never ran."""
        return [item for item in items if item.nodeid not in self.records
                and "teardown" not in self.phases.get(item.nodeid, {})]

    def not_run(self, items: list[pytest.Item], message: str,
                reason: str) -> list[dict[str, Any]]:
        """Record ``items`` as not run with ``message`` and ``reason``; the records."""
        from opsgate.outcome import Outcome

        added = []
        for item in items:
            case, now = case_of(item), utcnow()
            if case is None:
                record = plain_record(nodeid=item.nodeid,
                                      environment=self.info.environment_label,
                                      outcome="not_run", message=message, started_at=now,
                                      finished_at=now, redactor=self.redactor)
                record["reason"] = reason
            else:
                record = check_record(
                    ident=case.check.id, environment=case.env.name, check=case.check,
                    outcome=Outcome("not_run", message, reason=reason),
                    observation=None, asked={}, seen={}, started_at=now, finished_at=now,
                    nodeid=item.nodeid, redactor=self.redactor, advisory=case.advisory)
            self.records[item.nodeid] = record
            if self.log is not None:
                self.log.add(record)
            added.append(record)
        return added

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """At an item's teardown its record is final: append it to the evidence."""
        if getattr(report, "opsgate_not_run", False):
            return  # made by ``not_run`` for an item that never ran: recorded already
        phases = self.phases.setdefault(report.nodeid, {"started": utcnow()})
        phases[report.when] = report
        if report.when != "teardown":
            return
        record = self.records.get(report.nodeid) or self._plain_record(report.nodeid, phases)
        record = _with_pytest_outcome(record, phases)
        self.records[report.nodeid] = record
        if self.log is not None:
            self.log.add(record)

    def _plain_record(self, nodeid: str, phases: dict[str, Any]) -> dict[str, Any]:
        """The record of a hand-written check (a plain pytest test)."""
        setup, call = phases.get("setup"), phases.get("call")
        outcome = _pytest_outcome(setup, call)
        failing = next((r for r in (setup, call) if r is not None and not r.passed), None)
        message = _report_message(failing) if failing is not None else outcome
        return plain_record(nodeid=nodeid, environment=self.info.environment_label,
                            outcome=outcome, message=message, started_at=phases["started"],
                            finished_at=utcnow(), redactor=self.redactor)

    def finish(self, finished: bool) -> Decision:
        """Decide the verdict and write evidence.json (atomically)."""
        records = list(self.records.values())
        self.decision = decide(records, selected=self.selected, finished=finished)
        self.document = self._document(records, utcnow())
        self.document["triage"] = self._triage(records)
        if self.files is not None and self.document["triage"]:
            write_atomic(self.files.directory / "triage.json",
                         json.dumps(seal(self._triage_document()), indent=2,
                                    ensure_ascii=False) + "\n")
        if self.log is not None:
            self.evidence_path = self.log.finish(self.document)
        return self.decision

    def _triage(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Triage of every environment whose ``triage.checklist`` is this run's checklist."""
        from opsgate import triage

        results = []
        for env in self.info.environments:
            config = env.environment.triage
            if config is None or config.checklist != self.info.checklist:
                continue
            mine = [r for r in records if r["environment"] == env.name]
            facts = triage.fact_values(config, mine)
            suggestion = triage.suggest(config, facts)
            context = {"timestamp": iso(utcnow()), "incident": self.info.incident or "-",
                       "environment": env.name, "operator": self.info.operator}
            text = triage.status_update(config, suggestion, facts, context)
            results.append(self.redactor.data({"environment": env.name, "facts": facts,
                                               **suggestion, "status_update": text}))
        return results

    def _triage_document(self) -> dict[str, Any]:
        assert self.document is not None
        keep = ("format", "verdict", "environment", "checklist", "incident", "operator",
                "run_id", "started_at", "finished_at", "revision", "configuration")
        return {**{key: self.document[key] for key in keep},
                "format": "opsgate.triage/1", "triage": self.document["triage"]}

    def _document(self, records: list[dict[str, Any]], finished_at: datetime) -> dict[str, Any]:
        info, decision = self.info, self.decision
        assert decision is not None
        return {
            "format": "opsgate.evidence/1",
            "verdict": decision.verdict,
            "reason": decision.reason,
            "decision": DECISIONS[decision.verdict],
            "blocking": decision.blocking,
            "advisory_failures": decision.advisory,
            "counts": decision.counts,
            "environment": info.environment_label,
            "environments": [env.name for env in info.environments],
            "checklist": info.checklist_label,
            "checklist_items": {env.name: coverage(env, info.checklist)
                                for env in info.environments},
            "incident": info.incident,
            "operator": info.operator,
            "run_id": info.run_id,
            "started_at": iso(info.started_at),
            "finished_at": iso(finished_at),
            "revision": info.revision,
            "allow_mutations": self.allow_mutations,
            "configuration": [{"environment": env.name, "file": str(env.path),
                               "sha256": env.fingerprint,
                               "production": env.environment.production}
                              for env in info.environments],
            "selected": self.selected,
            "preflight": self.preflight,
            "checks": records,
        }

    def close(self) -> None:
        self.scheduler.close()
        self.runner.close()


def start(config: pytest.Config) -> RunState:
    """Load the environments and set up the run; pytest.UsageError on any problem."""
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
        _learn_signing(env, redactor)
    files = None if config.option.collectonly else RunFiles.create(config, info)
    return RunState(info, files, redactor, allow_mutations=config.getoption("allow_mutations"),
                    run_deadline=config.getoption("run_deadline"))


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
    header_sets += [request.headers for check in env.environment.checks
                    for request in check.requests()]
    return [value for headers in header_sets for name, value in headers.items()
            if value and redactor.is_sensitive(name)]


def _learn_signing(env: LoadedEnvironment, redactor: Redactor) -> None:
    """Signing secrets (even literal ones) and the headers signatures are sent in."""
    from opsgate.signing import secret_values, signature_headers

    requests = [request for check in env.environment.checks for request in check.requests()]
    for value in secret_values(requests):
        redactor.add(value)
    redactor.add_names(signature_headers(requests))


WAITING_KINDS = frozenset({"window", "flow"})


def _workers(info: RunInfo, cases: list[CheckCase]) -> int:
    """Threads enough for every target's concurrency bound to be used at once, plus one per
    check that spends its time waiting (a window between samples, a flow between polls)."""
    total = 0
    for env in info.environments:
        targets = env.environment.targets
        total += sum(t.concurrency for t in targets.http.values())
        total += sum(t.max_connections for t in targets.databases.values())
        total += targets.prometheus.concurrency if targets.prometheus else 0
    total += sum(1 for case in cases if case.check.kind in WAITING_KINDS)
    return max(4, min(total, 256))


def quiet_and_redact_logging(redactor: Redactor) -> None:
    """httpx logs full URLs at INFO; every log record is redacted before any handler sees it."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            record.msg, record.args = redactor.text(record.getMessage()), None
            if record.exc_info:
                record.exc_text = redactor.text(
                    logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
            if record.stack_info:
                record.stack_info = redactor.text(record.stack_info)
        except Exception:  # a broken log call must not break the run
            record.msg, record.args = "[unformattable log record]", None
            record.exc_info = None
        return record

    factory.opsgate_previous = previous  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def restore_logging() -> None:
    factory = logging.getLogRecordFactory()
    if hasattr(factory, "opsgate_previous"):
        logging.setLogRecordFactory(factory.opsgate_previous)


def _with_pytest_outcome(record: dict[str, Any], phases: dict[str, Any]) -> dict[str, Any]:
    """pytest has the last word: a skip or a teardown error cannot stay ``passed``."""
    outcome = _pytest_outcome(phases.get("setup"), phases.get("call"), phases.get("teardown"))
    if outcome == record["outcome"] or record["outcome"] in ("failed", "error"):
        return record
    return {**record, "outcome": outcome, "message": f"{record['message']} (pytest: {outcome})"}


def _report_message(report: Any) -> str:
    """What a failed or skipped report says, as plain text (a skip's reason, not its tuple)."""
    if report.skipped and getattr(report, "wasxfail", None) is not None:
        return f"not run: expected to fail: {report.wasxfail or 'xfail'}"
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        return f"not run: skipped: {reason}" if report.skipped else reason
    return str(longrepr) if longrepr else report.outcome


def _pytest_outcome(*reports: Any) -> str:
    present = [r for r in reports if r is not None]
    if any(r.skipped for r in present):
        return "not_run"
    if any(r.failed and r.when != "call" for r in present):
        return "error"
    if any(r.failed for r in present):
        return "failed"
    return "passed" if any(r.when == "call" for r in present) else "not_run"


def case_of(item: pytest.Item) -> CheckCase | None:
    """The configured check a test item runs, if it is one."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("opsgate_check") if callspec is not None else None
    return case if isinstance(case, CheckCase) else None
