"""Check kinds: one module per kind, each defining its pydantic model (see config/base.py).

``KIND_MODULES`` is the registry: the environment schema accepts every kind listed here.
"""

from __future__ import annotations

import importlib

from opsgate.config.base import CheckBase

KIND_MODULES = (
    "opsgate.kinds.http",
    "opsgate.kinds.sql",
    "opsgate.kinds.promql",
    "opsgate.kinds.flow",
    "opsgate.kinds.idempotency",
    "opsgate.kinds.window",
    "opsgate.kinds.baseline",
    "opsgate.kinds.freshness",
    "opsgate.kinds.alerts",
    "opsgate.kinds.postgres",
    "opsgate.kinds.invariant",
)


def check_models() -> list[type[CheckBase]]:
    """The model class of every registered kind (each module's ``MODEL``)."""
    return [importlib.import_module(name).MODEL for name in KIND_MODULES]


def kind_names() -> list[str]:
    return [model.model_fields["kind"].annotation.__args__[0] for model in check_models()]
