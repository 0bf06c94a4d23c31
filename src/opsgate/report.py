"""What a person reads in report.html: the verdict banner and an evidence block per check.

Only this module formats HTML. Everything it receives is already redacted; it escapes
everything it prints.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from opsgate.chart import points_of, sparkline

_COLOURS = {"PASS": "#1a7f37", "BLOCKED": "#cf222e", "INCOMPLETE": "#9a6700"}
_OUTCOME_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#9a6700",
                    "not_run": "#57606a"}


_ADVISORY_TITLE = "Advisory checks that did not pass (not blocking)"


def verdict_banner(document: dict[str, Any]) -> str:
    """The first thing in the report: verdict, blocking checks, triage, checklist, the facts."""
    verdict = document["verdict"]
    colour = _COLOURS.get(verdict, "#57606a")
    summary = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in document["counts"].items())
    return (
        f"<div id='opsgate-verdict' style='border:3px solid {colour};padding:12px;"
        f"margin-bottom:16px'>"
        f"<h1 style='color:{colour};margin:0'>Gate verdict: {escape(verdict)}</h1>"
        f"<p>{escape(document['reason'])} ({escape(summary)})</p>"
        f"{_id_list('Blocking checks', document['blocking'])}"
        f"{_id_list(_ADVISORY_TITLE, document.get('advisory_failures', []))}"
        f"{_triage(document.get('triage'))}"
        f"{_facts(document)}{_checklist(document)}</div>"
    )


def _id_list(title: str, ids: list[str]) -> str:
    if not ids:
        return ""
    items = "".join(f"<li><code>{escape(ident)}</code></li>" for ident in ids)
    return f"<p><b>{escape(title)}:</b></p><ul>{items}</ul>"


def _facts(document: dict[str, Any]) -> str:
    configuration = "; ".join(f"{c['file']} sha256:{c['sha256'][:16]}"
                              for c in document.get("configuration", []))
    rows = [
        ("Environment", document["environment"]),
        ("Checklist", document["checklist"]),
        ("Incident", document.get("incident") or "-"),
        ("Operator", document.get("operator") or "-"),
        ("Started (UTC)", document["started_at"]),
        ("Finished (UTC)", document.get("finished_at") or "-"),
        ("Suite revision", document.get("revision") or "unknown"),
        ("Run id", document["run_id"]),
        ("Configuration", configuration or "-"),
        ("Mutations allowed", "yes" if document.get("allow_mutations") else "no"),
        ("Decision", document.get("decision") or "-"),
    ]
    cells = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{escape(k)}</th>"
                    f"<td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<h3>Operation record</h3><table>{cells}</table>"


def _checklist(document: dict[str, Any]) -> str:
    """Each checklist item with the check(s) covering it and their outcomes."""
    outcomes = {(r["environment"], r["id"]): r["outcome"] for r in document.get("checks", [])}
    rows = []
    for environment, items in (document.get("checklist_items") or {}).items():
        for item in items:
            checks = " ".join(_outcome_tag(ident, outcomes.get((environment, ident), "not_run"))
                              for ident in item["checks"])
            rows.append(f"<tr><td>{escape(environment)}</td><td>{escape(item['text'])}</td>"
                        f"<td>{checks}</td></tr>")
    if not rows:
        return ""
    return ("<h3>Checklist items</h3><table><tr><th>Environment</th><th>Item</th>"
            f"<th>Covered by</th></tr>{''.join(rows)}</table>")


def _outcome_tag(ident: str, outcome: str) -> str:
    colour = _OUTCOME_COLOURS.get(outcome, "#57606a")
    return (f"<code style='color:{colour}'>{escape(ident)}</code> "
            f"<span style='color:{colour}'>{escape(outcome)}</span>")


def _triage(triages: list[dict[str, Any]] | None) -> str:
    return "".join(_one_triage(triage) for triage in triages or [])


def _one_triage(triage: dict[str, Any]) -> str:
    fired = triage.get("rule") or "no rule fired (default)"
    return (f"<h3>Triage ({escape(str(triage.get('environment')))}): suggested severity "
            f"{escape(str(triage.get('severity')))}</h3>"
            f"<p>Rule: {escape(str(fired))}</p>"
            f"<p>Status update, ready to paste:</p>"
            f"<pre id='opsgate-status-update' style='white-space:pre-wrap;background:#f6f8fa;"
            f"padding:8px'>{escape(str(triage.get('status_update', '')))}</pre>")


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
        f"{sparkline(points_of(evidence.get('seen') or {}), record.get('title') or '')}"
        f"{_section('Asked', evidence.get('asked'))}{_section('Saw', evidence.get('seen'))}"
        f"</div>"
    )


def _judgement_colour(ok: bool | None) -> str:
    return {True: "#1a7f37", False: "#cf222e"}.get(ok, "#9a6700")  # type: ignore[call-overload]


_PRE = "<pre style='white-space:pre-wrap;max-height:30em;overflow:auto'>"


def _section(title: str, content: Any) -> str:
    """A collapsible block; multi-line texts (SQL, PromQL) are shown as written."""
    if not content:
        return ""
    texts = {}
    if isinstance(content, dict):
        texts = {k: v for k, v in content.items() if isinstance(v, str) and "\n" in v}
        content = {k: v for k, v in content.items() if k not in texts}
    blocks = "".join(f"<p><i>{escape(key)}</i></p>{_PRE}{escape(text.strip())}</pre>"
                     for key, text in texts.items())
    rest = json.dumps(content, indent=2, ensure_ascii=False, default=str) if content else ""
    return (f"<details open><summary><b>{escape(title)}</b></summary>{blocks}"
            f"{f'{_PRE}{escape(rest)}</pre>' if rest else ''}</details>")


def terminal_lines(document: dict[str, Any]) -> list[str]:
    """The verdict's lines for the terminal: facts, reason, every check that did not pass."""
    counts = ", ".join(f"{n} {name.replace('_', ' ')}"
                       for name, n in document.get("counts", {}).items())
    lines = [f"environment {document.get('environment')} | checklist "
             f"{document.get('checklist')} | {counts}", document.get("reason", "")]
    for triage in document.get("triage") or []:
        lines.append(f"triage {triage['environment']}: suggested severity {triage['severity']} "
                     f"(rule: {triage.get('rule') or 'default'})")
        lines.append(f"  status update: {triage['status_update']}")
    for record in document.get("checks", []):
        if record["outcome"] == "passed":
            continue
        tag = " (advisory)" if record.get("advisory") else ""
        lines.append(f"  {record['outcome'].upper():8} {record['environment']}:{record['id']}"
                     f"{tag}  {record['message']}")
    return lines
