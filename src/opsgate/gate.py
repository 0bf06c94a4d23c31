"""The gate: every selected check passed, all of them ran, and there was at least one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["PASS", "BLOCKED", "INCOMPLETE"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    blocking: list[str]
    counts: dict[str, int]
    reason: str

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"


def decide(records: Iterable[dict[str, Any]], *, selected: int, finished: bool) -> Decision:
    """PASS only when ``selected`` > 0 checks all ran to ``passed`` and the run finished."""
    records = list(records)
    counts = Counter(record["outcome"] for record in records)
    counts.update(not_run=max(selected - len(records), 0))
    summary = {name: counts.get(name, 0) for name in ("passed", "failed", "error", "not_run")}
    blocking = [record["id"] if "::" in record["id"] else f'{record["environment"]}:{record["id"]}'
                for record in records if record["outcome"] != "passed"]
    if not finished:
        return Decision("INCOMPLETE", blocking, summary,
                        "the run did not finish: what did not run cannot pass")
    if selected == 0:
        return Decision("BLOCKED", blocking, summary, "no check was selected")
    if len(records) < selected:
        return Decision("BLOCKED", blocking, summary,
                        f"{selected - len(records)} selected check(s) did not run")
    if blocking:
        return Decision("BLOCKED", blocking, summary,
                        f"{len(blocking)} check(s) did not pass")
    return Decision("PASS", [], summary, f"all {selected} check(s) passed")
