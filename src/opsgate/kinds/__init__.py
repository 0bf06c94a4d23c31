"""Check kinds: one module per kind, each defining its pydantic model (see config/base.py).

``KINDS`` is the registry, kind name -> module. A kind's module is imported, and its model
built, only when an environment has a check of that kind: start-up pays for the kinds in use.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic_core import PydanticCustomError

from opsgate.config.base import CheckBase

KINDS = {
    "http": "opsgate.kinds.http",
    "sql": "opsgate.kinds.sql",
    "promql": "opsgate.kinds.promql",
    "flow": "opsgate.kinds.flow",
    "idempotency": "opsgate.kinds.idempotency",
    "window": "opsgate.kinds.window",
    "baseline": "opsgate.kinds.baseline",
    "freshness": "opsgate.kinds.freshness",
    "alerts": "opsgate.kinds.alerts",
    "postgres": "opsgate.kinds.postgres",
    "invariant": "opsgate.kinds.invariant",
}
KIND_MODULES = tuple(KINDS.values())


def kind_names() -> list[str]:
    return list(KINDS)


def model_for(kind: str) -> type[CheckBase]:
    """The model class of ``kind`` (its module's ``MODEL``), importing the module on first use."""
    return importlib.import_module(KINDS[kind]).MODEL


def check_models() -> list[type[CheckBase]]:
    """The model class of every registered kind."""
    return [model_for(kind) for kind in KINDS]


def validate_check(raw: Any) -> CheckBase:
    """One entry of an environment's ``checks``, validated by the model of its ``kind``.

    Raises the same error types a pydantic discriminated union would (``union_tag_not_found``,
    ``union_tag_invalid``), so the loader's messages stay the same.
    """
    if isinstance(raw, CheckBase):
        return raw
    if not isinstance(raw, dict):
        raise PydanticCustomError("model_type", "a check is a mapping with a 'kind', got {got}",
                                  {"got": type(raw).__name__})
    if "kind" not in raw:
        raise PydanticCustomError("union_tag_not_found", "the check has no 'kind'")
    kind = raw["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise PydanticCustomError("union_tag_invalid", "unknown kind {tag}", {"tag": str(kind)})
    return model_for(kind).model_validate(raw)
