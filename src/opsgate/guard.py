"""The mutation guard: which checks may change the system they look at.

A check that changes state (``mutating: true``: POST steps, replays, job creation) runs only
when the run allows mutations (``--allow-mutations``) and, against an environment marked
``production: true``, only when the check is also marked ``production_safe: true``. A refused
check is not run, which blocks the gate: the gate never passes on what it did not check.
"""

from __future__ import annotations

from opsgate.runner import CheckCase


def refusal(case: CheckCase, allow_mutations: bool) -> str | None:
    """Why ``case`` may not run in this run, or None when it may."""
    check, environment = case.check, case.env.environment
    if not check.mutating:
        return None
    if not allow_mutations:
        return ("refused: this check changes state (mutating: true); run with "
                "--allow-mutations to allow it")
    if environment.production and not check.production_safe:
        return (f"refused: mutating check against production environment {environment.name!r}; "
                "mark it production_safe: true only if it is safe there")
    return None
