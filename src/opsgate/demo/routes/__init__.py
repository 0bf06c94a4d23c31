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
    webhooks,
)

BLUEPRINTS = (ops.blueprint, internal.blueprint, jobs.blueprint, payments.blueprint,
              auth.blueprint, pos.blueprint, webhooks.blueprint, organizations.blueprint)
