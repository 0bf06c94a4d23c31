"""A pytest plugin for row 6 (``-p bench_profile``): time spent in each reporting step.

Loaded before opsgate configures its run, it wraps the functions and hook methods that turn
checks into evidence and reports, adds up their wall time and call counts, and writes them as
JSON to ``$BENCH_PROFILE_OUT`` when the process exits:

- opsgate: ``check_record`` (the evidence record), ``evidence_block`` (its HTML), the report
  redaction, ``RunState.pytest_runtest_logreport`` (evidence.jsonl), ``RunState.finish``
  (evidence.json), ``RunFiles.finish`` (fsync and rename);
- pytest-html: its per-report hook and its session-end report generation;
- pytest's JUnit XML: its per-report hook and its session-end write.

Nested timed calls are counted in each (``evidence_block`` inside pytest's report hook is not).
It also records whether pytest-html's ``generate_report_on_test`` is on.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

TOTALS: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
FACTS: dict[str, Any] = {}


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps pluggy's hookimpl markers
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            entry = TOTALS[name]
            entry[0] += time.perf_counter() - begin
            entry[1] += 1

    wrapper.bench_timed = True  # type: ignore[attr-defined]
    return wrapper


def _wrap(owner: Any, attribute: str, name: str) -> None:
    """Time ``owner.attribute`` when it exists and is not timed already."""
    function = getattr(owner, attribute, None)
    if function is not None and not getattr(function, "bench_timed", False):
        setattr(owner, attribute, _timed(name, function))


def _install() -> None:
    from _pytest import junitxml
    from pytest_html.basereport import BaseReport

    import opsgate.evidence
    import opsgate.report
    import opsgate.session
    from opsgate.artifacts import RunFiles

    # Where they are defined (modules that import them later get the timed ones), then where
    # the plugin module has already bound them by name.
    _wrap(opsgate.evidence, "check_record", "opsgate check_record")
    _wrap(opsgate.report, "evidence_block", "opsgate evidence_block")
    import opsgate.gate_plugin

    _wrap(opsgate.gate_plugin, "check_record", "opsgate check_record")
    _wrap(opsgate.gate_plugin, "_redact_report", "opsgate _redact_report")
    _wrap(opsgate.session.RunState, "pytest_runtest_logreport",
          "opsgate evidence.jsonl (logreport)")
    _wrap(opsgate.session.RunState, "finish", "opsgate evidence.json (finish)")
    _wrap(RunFiles, "finish", "opsgate publish files (fsync, rename)")
    _wrap(BaseReport, "pytest_runtest_logreport", "pytest-html per report")
    _wrap(BaseReport, "pytest_sessionfinish", "pytest-html write report")
    _wrap(junitxml.LogXML, "pytest_runtest_logreport", "junitxml per report")
    _wrap(junitxml.LogXML, "pytest_sessionfinish", "junitxml write")


def pytest_configure(config: pytest.Config) -> None:
    try:
        FACTS["generate_report_on_test"] = bool(config.getini("generate_report_on_test"))
    except ValueError:
        FACTS["generate_report_on_test"] = None


def _write() -> None:
    target = os.environ.get("BENCH_PROFILE_OUT")
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump({"totals": {k: {"seconds": v[0], "calls": v[1]}
                                  for k, v in TOTALS.items()}, "facts": FACTS}, handle)


_install()
atexit.register(_write)
