"""The demo's HTTP surface, one blueprint per area."""

from __future__ import annotations

from opsgate.demo.routes import (
    auth,
    internal,
    jobs,
    ops,
    organizations,
    payments,
    pos,
    storage,
    webhooks,
)

BLUEPRINTS = (ops.blueprint, internal.blueprint, jobs.blueprint, payments.blueprint,
              auth.blueprint, pos.blueprint, webhooks.blueprint, storage.blueprint,
              organizations.blueprint)
