"""The identity and facts of one run: id, who, what, where its files go, the suite revision."""

from __future__ import annotations

import getpass
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from opsgate.config.loader import LoadedEnvironment
from opsgate.observation import utcnow


def new_run_id(now: datetime) -> str:
    """``20261123T231500Z-3f9a1c``: sortable, unique."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def default_operator() -> str:
    """The operator named by ``OPSGATE_OPERATOR``, else the login name."""
    try:
        return os.environ.get("OPSGATE_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def suite_revision(root: Path) -> str:
    """``OPSGATE_REVISION`` or the git commit of the suite (``+dirty`` with local changes)."""
    if os.environ.get("OPSGATE_REVISION"):
        return os.environ["OPSGATE_REVISION"]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


@dataclass
class RunInfo:
    """What a run is about, fixed at start."""

    environments: list[LoadedEnvironment]
    checklist: str | None
    incident: str | None
    operator: str
    revision: str
    started_at: datetime = field(default_factory=utcnow)
    run_id: str = ""

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.started_at)

    @property
    def environment_label(self) -> str:
        return ", ".join(env.name for env in self.environments)

    @property
    def checklist_label(self) -> str:
        return self.checklist or "all"

    def directory_name(self) -> str:
        envs = "+".join(env.name for env in self.environments)
        return f"{self.run_id}-{envs}-{self.checklist_label}"
