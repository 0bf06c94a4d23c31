"""The environment file's shape, validated by pydantic: unknown keys and wrong types are errors.

Check kinds live in ``opsgate.kinds`` (one module each); each entry of ``checks`` is validated
by the model of its ``kind``, imported on first use (``opsgate.kinds.validate_check``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PlainValidator, SerializeAsAny

from opsgate.config.base import CheckBase, Strict
from opsgate.config.identity import Identity
from opsgate.config.targets import DatabaseTarget, HttpTarget, PrometheusTarget, Targets
from opsgate.kinds import validate_check
from opsgate.triage import Triage

AnyCheck = Annotated[SerializeAsAny[CheckBase], PlainValidator(validate_check)]
Check = CheckBase

__all__ = ["AnyCheck", "Check", "Checklist", "DatabaseTarget", "Environment", "HttpTarget",
           "PrometheusTarget", "Targets"]


class ChecklistItem(Strict):
    """One line of a runbook's checklist and the check(s) that cover it."""

    text: str
    checks: list[str]


class Checklist(Strict):
    """A named set of checks; ``advisory`` ones are shown but do not block the gate."""

    description: str = ""
    items: list[ChecklistItem] = []
    advisory: list[str] = []

    def check_ids(self) -> set[str]:
        """Ids this checklist names itself (checks may also name the checklist)."""
        return {ident for item in self.items for ident in item.checks} | set(self.advisory)


class Environment(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
    description: str = ""
    production: bool = False
    targets: Targets = Targets()
    checklists: dict[str, Checklist] = {}
    checks: list[AnyCheck] = []
    triage: Triage | None = None
    identity: Identity = Identity()
