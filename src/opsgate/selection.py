"""Which configured checks a run selects, and which of them are advisory.

Without ``--checklist`` every check runs and every check is required. With one, a check is
selected when it names the checklist in its ``checklists`` or the checklist names it in its
``items`` or ``advisory``; advisory checks are shown but do not block the gate.
"""

from __future__ import annotations

from collections.abc import Iterable

from opsgate.config.loader import LoadedEnvironment
from opsgate.runner import CheckCase


def select(environments: Iterable[LoadedEnvironment], checklist: str | None) -> list[CheckCase]:
    """The selected checks, in file order, per environment."""
    cases = []
    for env in environments:
        chosen = env.environment.checklists.get(checklist) if checklist else None
        named = chosen.check_ids() if chosen else set()
        advisory = set(chosen.advisory) if chosen else set()
        for check in env.environment.checks:
            if checklist is None or checklist in check.checklists or check.id in named:
                cases.append(CheckCase(env, check, advisory=check.id in advisory))
    return cases


def coverage(env: LoadedEnvironment, checklist: str | None) -> list[dict]:
    """For each item of the checklist, its text and the ids of the checks covering it."""
    chosen = env.environment.checklists.get(checklist) if checklist else None
    if chosen is None:
        return []
    return [{"text": item.text, "checks": list(item.checks)} for item in chosen.items]
