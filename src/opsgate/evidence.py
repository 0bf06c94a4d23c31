"""Evidence a machine keeps: one record per check, appended as it completes, and evidence.json.

``evidence.jsonl`` grows by one line per finished check (nothing is lost if the run dies);
``evidence.json`` is written at the end to a temporary name, flushed and renamed. Its
``sha256`` is the digest of its canonical content (the document without ``sha256``, as JSON
with sorted keys, no spaces, UTF-8). The format is documented in docs/evidence-format.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from opsgate.observation import Observation
from opsgate.outcome import Outcome
from opsgate.redaction import Redactor

FORMAT = "opsgate.evidence/1"
MAX_TEXT = 4000


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``."""
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_record(*, ident: str, environment: str, check: Any, outcome: Outcome,
                 observation: Observation | None, asked: dict[str, Any], seen: dict[str, Any],
                 started_at: datetime, finished_at: datetime, nodeid: str,
                 redactor: Redactor, advisory: bool = False) -> dict[str, Any]:
    """The evidence record of one configured check, redacted."""
    record = {
        "id": ident,
        "environment": environment,
        "title": check.title,
        "kind": check.kind,
        "severity": check.severity,
        "checklists": list(check.checklists),
        "advisory": advisory,
        "mutating": check.mutating,
        "outcome": outcome.status,
        "reason": outcome.reason,
        "condition": outcome.condition or None,
        "observed": _jsonable(outcome.observed),
        "message": outcome.message,
        "judgements": [
            {"label": j.label, "condition": j.condition, "observed": _jsonable(j.observed),
             "ok": j.ok, "text": j.text}
            for j in outcome.judgements
        ],
        "evidence": {"asked": _jsonable(asked), "seen": _jsonable(seen)},
        "started_at": iso(observation.started_at if observation else started_at),
        "finished_at": iso(observation.finished_at if observation else finished_at),
        "nodeid": nodeid,
    }
    return redactor.data(record)


def plain_record(*, nodeid: str, environment: str, outcome: str, message: str,
                started_at: datetime, finished_at: datetime,
                redactor: Redactor) -> dict[str, Any]:
    """The evidence record of a hand-written check (a plain pytest test)."""
    return redactor.data({
        "id": nodeid, "environment": environment, "title": nodeid, "kind": "pytest",
        "severity": "high", "checklists": [], "advisory": False, "mutating": False,
        "outcome": outcome, "reason": None,
        "condition": None, "observed": None, "message": message, "judgements": [],
        "evidence": {}, "started_at": iso(started_at), "finished_at": iso(finished_at),
        "nodeid": nodeid,
    })


def _jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: datetimes as ISO, decimals as floats, long text cut."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "... (cut)"
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def canonical(document: dict[str, Any]) -> bytes:
    """The canonical bytes the digest covers: the document without ``sha256``."""
    body = {key: value for key, value in document.items() if key != "sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its ``sha256`` set."""
    return {**document, "sha256": hashlib.sha256(canonical(document)).hexdigest()}


def verify(document: dict[str, Any]) -> bool:
    """Whether ``document['sha256']`` matches its content."""
    return document.get("sha256") == hashlib.sha256(canonical(document)).hexdigest()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, flush, fsync, rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class EvidenceLog:
    """Appends each finished check to ``evidence.jsonl`` and writes the final document."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.records: list[dict[str, Any]] = []
        self._lines = open(directory / "evidence.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._lines.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._lines.flush()

    def finish(self, document: dict[str, Any]) -> Path:
        """Seal and write evidence.json atomically; return its path."""
        self._lines.close()
        path = self.directory / "evidence.json"
        write_atomic(path, json.dumps(seal(document), indent=2, ensure_ascii=False) + "\n")
        return path
