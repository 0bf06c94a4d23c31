"""Row 6: what reporting costs per check, over 2,000 cheap checks.

The checks are SQLite scalar queries against one small local file, so measuring is nearly free
and the run is mostly bookkeeping. Three runs of the same checks:

- the normal run (report.html, junit.xml, evidence.json), with ``bench_profile`` adding up the
  time spent in each reporting step (opsgate's evidence record, its HTML block, redaction,
  evidence.jsonl and evidence.json, pytest-html, JUnit);
- ``-p no:html``: no report.html;
- ``-p no:html -p no:junitxml``: no report.html and no junit.xml.

Reporting per check is the profiled total divided by the number of checks; the wall-time
differences between the runs are shown as a cross-check, with report.html's size and the
start-up (``--collect-only``) of the same file, which grows with the number of checks too.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from bench_common import (
    BENCH_DIR,
    GateRun,
    Result,
    Work,
    collect_only,
    log,
    median,
    ratio_text,
    run_gate,
)

LIMIT_MS = 5.0


def sqlite_env(work: Work, checks: int) -> Path:
    database = work.path("bench.sqlite")
    with sqlite3.connect(database) as conn:
        conn.execute("create table if not exists queue (name text, depth integer)")
        conn.execute("delete from queue")
        conn.execute("insert into queue values ('orders', 3)")
    return work.write_yaml(f"sqlite-{checks}.yaml", {
        "name": "bench-report",
        "targets": {"databases": {"main": {"url": f"sqlite:///{database}"}}},
        "checks": [{"id": f"S{n:04d}", "title": f"queue depth small ({n})", "kind": "sql",
                    "scalar": f"select depth from queue where name = 'orders' and {n} >= 0",
                    "expect": "<= 5", "label": "queue depth"} for n in range(checks)],
    })


def python_path(folder: Path) -> str:
    """``folder`` ahead of any PYTHONPATH already set."""
    return os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


def row_report(work: Work, checks: int, repeats: int) -> list[Result]:
    env_file = sqlite_env(work, checks)
    log(f"row 6: {checks} SQLite checks: normal run (profiled), without HTML, without JUnit")
    run_gate(work, env_file, label="report-warm")
    profile_out = work.path("profile.json")
    profiled = run_gate(work, env_file, "-p", "bench_profile", label="report",
                        child_env=work.env(PYTHONPATH=python_path(BENCH_DIR),
                                           BENCH_PROFILE_OUT=str(profile_out)))
    normal = run_gate(work, env_file, label="report")
    no_html = run_gate(work, env_file, "-p", "no:html", label="report-nohtml")
    bare = run_gate(work, env_file, "-p", "no:html", "-p", "no:junitxml", label="report-bare")
    startup = median([collect_only(work, env_file).seconds for _ in range(repeats)])
    profile = json.loads(profile_out.read_text()) if profile_out.is_file() else {}
    results = _report_results(checks, profiled, normal, no_html, bare, profile)
    results.append(Result("6d", f"... start-up (--collect-only, median of {repeats}) with "
                                f"{checks} checks",
                          f"{startup:.2f} s", "-", "-", "(info)", None,
                          [f"{startup * 1000 / checks:.2f} ms per check (the fixed start-up of "
                           "row 4 included) to load, validate and collect before any check runs"]))
    return results


def _report_results(checks: int, profiled: GateRun, normal: GateRun, no_html: GateRun,
                    bare: GateRun, profile: dict[str, Any]) -> list[Result]:
    totals = profile.get("totals", {})
    per_check = sum(entry["seconds"] for entry in totals.values()) * 1000 / checks
    html = profiled.folder / "report.html" if profiled.folder else None
    size = html.stat().st_size if html is not None and html.is_file() else 0
    on_test = profile.get("facts", {}).get("generate_report_on_test")
    passed = profiled.counts.get("passed") == checks and bool(totals)
    notes = [_breakdown(totals, checks), _cross_check(checks, normal, no_html, bare),
             f"report.html {size / 1e6:.2f} MB ({size / checks / 1000:.1f} kB per check); "
             f"generate_report_on_test = {on_test}; {profiled.counts}"]
    return [
        Result("6a", f"reporting per check, {checks} checks (profiled)",
               f"{per_check:.2f} ms", f"limit {LIMIT_MS:g} ms", ratio_text(per_check / LIMIT_MS),
               "<= 5 ms", passed and on_test is False and per_check <= LIMIT_MS, notes),
        Result("6b", f"... run wall time per check, {checks} checks (everything)",
               f"{normal.proc.seconds * 1000 / checks:.2f} ms", "-", "-", "(info)", None),
        Result("6c", "... report.html size", f"{size / 1e6:.2f} MB", "-", "-", "(info)", None),
    ]


def _breakdown(totals: dict[str, Any], checks: int) -> str:
    steps = sorted(totals.items(), key=lambda item: -item[1]["seconds"])
    return "ms per check by step: " + ", ".join(
        f"{name} {entry['seconds'] * 1000 / checks:.2f}" for name, entry in steps)


def _cross_check(checks: int, normal: GateRun, no_html: GateRun, bare: GateRun) -> str:
    html_junit = (normal.proc.cpu_seconds - bare.proc.cpu_seconds) * 1000 / checks
    return (f"wall: normal {normal.proc.seconds:.2f} s, -p no:html {no_html.proc.seconds:.2f} s, "
            f"no html and no junit {bare.proc.seconds:.2f} s; CPU: normal "
            f"{normal.proc.cpu_seconds:.2f} s, -p no:html {no_html.proc.cpu_seconds:.2f} s, no "
            f"html and no junit {bare.proc.cpu_seconds:.2f} s, so HTML + JUnit cost "
            f"{html_junit:.2f} ms CPU per check; pytest peak RSS {normal.proc.max_rss_mb:.0f} MB")
