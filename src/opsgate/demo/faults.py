"""The faults the demo can inject: names, what each does, and which checks it turns red.

``FAULTS`` drives ``opsgate-demo faults`` and validates ``--fault`` names. ``SYMPTOMS`` names
the checks of ``fixtures/environments/demo.yaml`` each fault turns red (every other check of
the gate stays green); ``PROMETHEUS_ONLY`` faults are seen only by the ``demo`` checklist's
PromQL checks, and ``POSTGRES_ONLY`` faults need ``--db postgresql+psycopg://...``.
"""

from __future__ import annotations

from collections.abc import Iterable

FAULTS: dict[str, str] = {
    "dlq_growing": "dead letters pile up: 12 in the DLQ and one more every 2 s",
    "ledger_drift": "one account's balance differs from the sum of its ledger entries",
    "stale_heartbeat": "the worker is dead: heartbeat minutes old, jobs stay queued",
    "open_internal": "internal endpoints answer without the secret header (fail open)",
    "slow_health": "/health takes about 700 ms",
    "failed_jobs": "the scheduled insights job fails every run; failed jobs in the last hour",
    "orphan_entries": "a partial restore lost transactions whose ledger entries remain",
    "db_error": "the health check cannot reach the database (database: error, db_ok false)",
    "duplicate_charge": "one provider charge recorded twice (same provider_ref)",
    "snapshot_drift": "a monthly snapshot differs from the ledger through month end",
    "insecure_cookie": "the refresh_token cookie is set without HttpOnly and Secure",
    "webhook_failures": "the webhook secret is wrong at runtime: every webhook fails",
    "canary_leak": "the POS canary allowlist is ignored: blocked tenants are authorized",
    "idempotency_broken": "Idempotency-Key is ignored: retries charge again, conflicts pass",
    "stale_rollup": "the analytics rollup cron stopped three days ago",
    "slow_p95": "p95 latency above 300 ms for the last 30 minutes (Prometheus history)",
    "error_spike": "about 30% 5xx for the last 30 minutes (history), a critical alert fires",
    "lag_growing": "the read-model consumer stopped: consumer lag grows",
    "missing_migration": "the last schema migration was not applied",
    "read_model_stale": "published events are not materialized into the read model",
    "sync_stale": "the mobile sync has not succeeded for 20 minutes",
    "stuck_lock": "a dead worker's idle transaction holds the insights advisory lock "
                  "(PostgreSQL only)",
    "duplicate_release": "one POS payment released its machine twice (iot_commands)",
    "replay_not_idempotent": "replaying a dead-lettered event applies its effect again",
    "ledger_edited": "a ledger entry was edited in place (the ledger is append-only)",
    "export_mismatch": "a payout's export row differs from the payout amount",
    "conflict_spike": "a client retries an in-flight Idempotency-Key: 409s pile up",
    "connect_not_ready": "the Stripe Connect account lost its bank account: payouts disabled",
    "dashboard_down": "the ops dashboard's backend is gone: /ops/dashboard answers 503",
    "wrong_secret_accepted": "internal endpoints check only that the secret header is there: "
                             "a wrong secret gets in",
    "org_scope_missing": "an organization-scoped internal read without organizationId answers "
                         "with every organization's data",
    "storage_down": "the object storage answers 503 to every request (no quorum)",
    "cookie_domain": "the refresh_token cookie names the old domain and Path=/ after a domain "
                     "move: browsers never send it back",
    "duplicate_signup": "signup lost its one-user-per-email rule: the same email signs up twice",
}

SYMPTOMS: dict[str, frozenset[str]] = {name: frozenset(ids) for name, ids in {
    "dlq_growing": ("Q1-http", "Q1-sql", "Q2", "Q6"),
    "ledger_drift": ("D1",),
    "stale_heartbeat": ("Q3-status", "Q3-trend", "Q4", "F2"),
    "open_internal": ("H4-no-secret",),
    "slow_health": ("H1",),
    "failed_jobs": ("Q5-jobs", "Q5-status", "M5"),
    "orphan_entries": ("D4",),
    "db_error": ("H1", "H2"),
    "duplicate_charge": ("D5-provider-ref",),
    "snapshot_drift": ("D2",),
    "insecure_cookie": ("F1",),
    "webhook_failures": ("Q5-webhooks", "Q5-status", "F3"),
    "canary_leak": ("F5",),
    "idempotency_broken": ("F4", "D5-idempotency-key"),
    "stale_rollup": ("D7", "Q12"),
    "slow_p95": ("M1", "M7"),
    "error_spike": ("M2", "M4"),
    "lag_growing": ("Q9",),
    "missing_migration": ("S2",),
    "read_model_stale": ("Q8",),
    "sync_stale": ("M3",),
    "stuck_lock": ("Q10", "S4", "Q11"),
    "duplicate_release": ("D6",),
    "replay_not_idempotent": ("Q7",),
    "ledger_edited": ("D3",),
    "export_mismatch": ("D8",),
    "conflict_spike": ("F6",),
    "connect_not_ready": ("H2-connect",),
    "dashboard_down": ("H3",),
    "wrong_secret_accepted": ("H4-wrong-secret",),
    "org_scope_missing": ("H5-no-org-read",),
    "storage_down": ("H6",),
    "cookie_domain": ("F1",),
    "duplicate_signup": ("F1-signup",),
}.items()}

POSTGRES_ONLY = frozenset({"stuck_lock"})
PROMETHEUS_ONLY = frozenset({"slow_p95", "error_spike", "lag_growing", "sync_stale",
                             "conflict_spike"})


class UnknownFault(ValueError):
    """A ``--fault`` name that is not in ``FAULTS`` (or cannot run on this database)."""


def validate(names: Iterable[str], backend: str = "sqlite") -> frozenset[str]:
    """``names`` as a set of known faults; UnknownFault naming the known ones otherwise."""
    chosen = frozenset(names)
    unknown = sorted(chosen - FAULTS.keys())
    if unknown:
        raise UnknownFault(
            f"unknown fault{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; "
            f"known faults: {', '.join(FAULTS)} (`opsgate-demo faults` describes them)")
    needs_postgres = sorted(chosen & POSTGRES_ONLY)
    if needs_postgres and backend != "postgresql":
        raise UnknownFault(
            f"fault {', '.join(needs_postgres)} needs PostgreSQL: give "
            "--db postgresql+psycopg://USER@HOST/DB")
    return chosen


def describe() -> str:
    """The fault list as ``opsgate-demo faults`` prints it: name, description, red checks."""
    width = max(map(len, FAULTS))
    return "\n".join(f"{name:<{width}}  {text}\n{'':<{width}}  red: "
                     f"{', '.join(sorted(SYMPTOMS[name]))}" for name, text in FAULTS.items())
