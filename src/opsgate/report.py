"""What a person reads in report.html: the verdict banner and an evidence block per check.

Only this module formats HTML. Everything it receives is already redacted; it escapes
everything it prints.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_COLOURS = {"PASS": "#1a7f37", "BLOCKED": "#cf222e", "INCOMPLETE": "#9a6700"}
_OUTCOME_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#9a6700",
                    "not_run": "#57606a"}


def verdict_banner(document: dict[str, Any]) -> str:
    """The first thing in the report: verdict, blocking checks and the run's facts."""
    verdict = document["verdict"]
    colour = _COLOURS.get(verdict, "#57606a")
    rows = [
        ("Environment", document["environment"]),
        ("Checklist", document["checklist"]),
        ("Incident", document.get("incident") or "-"),
        ("Operator", document.get("operator") or "-"),
        ("Started (UTC)", document["started_at"]),
        ("Finished (UTC)", document.get("finished_at") or "-"),
        ("Suite revision", document.get("revision") or "unknown"),
        ("Run id", document["run_id"]),
    ]
    counts = document["counts"]
    facts = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{escape(k)}</th>"
                    f"<td>{escape(str(v))}</td></tr>" for k, v in rows)
    summary = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items())
    blocking = "".join(f"<li><code>{escape(item)}</code></li>" for item in document["blocking"])
    blocking_html = (f"<p><b>Blocking checks:</b></p><ul>{blocking}</ul>" if blocking else "")
    return (
        f"<div id='opsgate-verdict' style='border:3px solid {colour};padding:12px;"
        f"margin-bottom:16px'>"
        f"<h1 style='color:{colour};margin:0'>Gate verdict: {escape(verdict)}</h1>"
        f"<p>{escape(document['reason'])} ({escape(summary)})</p>{blocking_html}"
        f"<table>{facts}</table></div>"
    )


def evidence_block(record: dict[str, Any]) -> str:
    """The evidence of one check: condition with the observed value, what it asked and saw."""
    outcome = record["outcome"]
    colour = _OUTCOME_COLOURS.get(outcome, "#57606a")
    label = {"error": "ERROR (could not measure)", "not_run": "NOT RUN"}.get(
        outcome, outcome.upper())
    judgements = "".join(
        f"<li style='color:{_judgement_colour(j['ok'])}'>{escape(j['text'])}</li>"
        for j in record.get("judgements", []))
    evidence = record.get("evidence") or {}
    return (
        f"<div class='opsgate-evidence' style='padding:6px;border-left:4px solid {colour}'>"
        f"<p><b style='color:{colour}'>{escape(label)}</b> "
        f"<code>{escape(record['id'])}</code> {escape(record.get('title') or '')}</p>"
        f"<p>{escape(record.get('message') or '')}</p>"
        f"{f'<ul>{judgements}</ul>' if judgements else ''}"
        f"<p>Started {escape(str(record.get('started_at')))}, finished "
        f"{escape(str(record.get('finished_at')))}</p>"
        f"{_section('Asked', evidence.get('asked'))}{_section('Saw', evidence.get('seen'))}"
        f"</div>"
    )


def _judgement_colour(ok: bool | None) -> str:
    return {True: "#1a7f37", False: "#cf222e"}.get(ok, "#9a6700")  # type: ignore[call-overload]


def _section(title: str, content: Any) -> str:
    if not content:
        return ""
    text = json.dumps(content, indent=2, ensure_ascii=False, default=str)
    return (f"<details open><summary><b>{escape(title)}</b></summary>"
            f"<pre style='white-space:pre-wrap;max-height:30em;overflow:auto'>"
            f"{escape(text)}</pre></details>")


def terminal_lines(document: dict[str, Any]) -> list[str]:
    """The verdict's lines for the terminal: facts, reason, every check that did not pass."""
    counts = ", ".join(f"{n} {name.replace('_', ' ')}"
                       for name, n in document.get("counts", {}).items())
    lines = [f"environment {document.get('environment')} | checklist "
             f"{document.get('checklist')} | {counts}", document.get("reason", "")]
    for record in document.get("checks", []):
        if record["outcome"] == "passed":
            continue
        tag = " (advisory)" if record.get("advisory") else ""
        lines.append(f"  {record['outcome'].upper():8} {record['environment']}:{record['id']}"
                     f"{tag}  {record['message']}")
    return lines
