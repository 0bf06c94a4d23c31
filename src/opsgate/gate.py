"""The gate: every selected required check passed, all of them ran, and there was at least one.

Advisory checks (named in a checklist's ``advisory``) are reported but never block. Anything
that did not run — skipped, deselected after selection, refused, interrupted — counts
against the gate: what was not checked cannot pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["PASS", "BLOCKED", "INCOMPLETE"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    blocking: list[str]
    counts: dict[str, int]
    reason: str
    advisory: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


def label(record: dict[str, Any]) -> str:
    """``environment:id`` of a configured check, the node id of a hand-written one."""
    if "::" in record["id"]:
        return record["id"]
    return f'{record["environment"]}:{record["id"]}'


def decide(records: Iterable[dict[str, Any]], *, selected: int, finished: bool) -> Decision:
    """PASS only when ``selected`` > 0 checks all ran, every required one ``passed``."""
    records = list(records)
    counts = Counter(record["outcome"] for record in records)
    counts.update(not_run=max(selected - len(records), 0))
    summary = {name: counts.get(name, 0) for name in ("passed", "failed", "error", "not_run")}
    unhappy = [record for record in records if record["outcome"] != "passed"]
    blocking = [label(r) for r in unhappy if not r.get("advisory")]
    advisory = [label(r) for r in unhappy if r.get("advisory")]
    if not finished:
        return Decision("INCOMPLETE", blocking, summary,
                        "the run did not finish: what did not run cannot pass", advisory)
    if selected == 0:
        return Decision("BLOCKED", blocking, summary, "no check was selected", advisory)
    if len(records) < selected:
        return Decision("BLOCKED", blocking, summary,
                        f"{selected - len(records)} selected check(s) did not run", advisory)
    if blocking:
        unrun = sum(1 for r in unhappy if not r.get("advisory") and r["outcome"] == "not_run")
        also = f" ({unrun} did not run)" if unrun else ""
        return Decision("BLOCKED", blocking, summary,
                        f"{len(blocking)} required check(s) did not pass{also}", advisory)
    note = f" ({len(advisory)} advisory did not)" if advisory else ""
    return Decision("PASS", [], summary, f"all {selected - len(advisory)} required check(s) "
                    f"passed{note}", advisory)
