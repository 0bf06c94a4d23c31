"""Seed data: the same healthy system at every start, bent by the injected faults.

A fixed random seed makes every run alike. Each fault changes only the rows its checks read
(see ``faults.SYMPTOMS``); the idempotency and replay stories go through the same code the
endpoints use, so their faults act on the seed exactly as they act on live requests.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, update

from opsgate.demo import outbox as events
from opsgate.demo.payments import insert_payment, pay, request_hash
from opsgate.demo.tables import (
    accounts,
    idempotency_keys,
    iot_commands,
    job_runs,
    jobs,
    ledger_entries,
    monthly_snapshots,
    payout_exports,
    payouts,
    rollups,
    schema_migrations,
    transactions,
    webhook_events,
    worker_heartbeats,
)

MIGRATIONS = ("create_accounts_ledger", "add_outbox", "add_jobs_heartbeats", "add_payments",
              "add_idempotency_keys", "add_rollups", "add_payouts_exports")
ACCOUNTS = 12
RETRY_KEY = "demo-retry-0001"
RETRY_BODY = {"amount": 1250, "currency": "BRL", "customer": "acct-7"}
RETRY_PAYMENT_ID = "pay_demo_retry_0001"
IN_FLIGHT_KEY = "demo-inflight-0001"
IN_FLIGHT_BODY = {"amount": 990, "currency": "BRL", "customer": "acct-3"}
REPLAYED_EVENT = "evt_dl_0001"
LAG_BACKLOG = 900
DLQ_BURST = 10


def seed(engine: Engine, faults: frozenset[str], now: datetime) -> None:
    """Fill the (empty) schema for a run with ``faults``."""
    rng = random.Random(2041)
    with engine.begin() as conn:
        _migrations(conn, faults, now)
        _ledger(conn, rng, faults, now)
        _outbox(conn, faults, now)
        _jobs(conn, faults, now)
        _webhooks(conn, faults, now)
        _payments(conn, rng, faults, now)
        _payouts(conn, rng, faults, now)
        _rollups(conn, faults, now)
    with engine.begin() as conn:  # an operator replayed one dead letter earlier
        events.replay(conn, REPLAYED_EVENT, now, dedupe="replay_not_idempotent" not in faults)
    _idempotency_story(engine, faults, now)


def _migrations(conn: Connection, faults: frozenset[str], now: datetime) -> None:
    applied = MIGRATIONS[:-1] if "missing_migration" in faults else MIGRATIONS
    conn.execute(schema_migrations.insert(), [
        {"version": i, "name": name, "applied_at": now - timedelta(days=30 - i)}
        for i, name in enumerate(applied, start=1)])


def _ledger(conn: Connection, rng: random.Random, faults: frozenset[str], now: datetime) -> None:
    """Accounts, their transactions and ledger entries, and monthly snapshots."""
    start = now - timedelta(days=80)
    conn.execute(accounts.insert(), [
        {"id": i, "owner": f"acct-{i}", "balance": 0, "created_at": start}
        for i in range(1, ACCOUNTS + 1)])
    balances: dict[int, int] = defaultdict(int)
    txs, entries = [], []
    stamps = sorted(start + timedelta(seconds=rng.uniform(0, 80 * 86400 - 600))
                    for _ in range(160))
    for tx_id, stamp in enumerate(stamps, start=1):
        account = rng.randint(1, ACCOUNTS)
        amount = rng.randint(5, 400) * 100 + rng.randint(0, 99)
        if balances[account] > amount and rng.random() < 0.5:
            other = account % ACCOUNTS + 1
            txs.append({"id": tx_id, "kind": "transfer", "amount": amount, "created_at": stamp})
            entries += [(tx_id, account, -amount, stamp), (tx_id, other, amount, stamp)]
            balances[account] -= amount
            balances[other] += amount
        else:
            txs.append({"id": tx_id, "kind": "deposit", "amount": amount, "created_at": stamp})
            entries.append((tx_id, account, amount, stamp))
            balances[account] += amount
    conn.execute(transactions.insert(), txs)
    conn.execute(ledger_entries.insert(), [
        {"transaction_id": t, "account_id": a, "amount": amt, "memo": "", "created_at": at}
        for t, a, amt, at in entries])
    drift = 1500 if "ledger_drift" in faults else 0
    for account, balance in balances.items():
        conn.execute(update(accounts).where(accounts.c.id == account)
                     .values(balance=balance + (drift if account == 7 else 0)))
    _snapshots(conn, entries, faults, now)
    if "ledger_edited" in faults:
        conn.execute(update(ledger_entries).where(ledger_entries.c.id == 42).values(
            memo="corrected by hand", updated_at=now - timedelta(hours=2)))
    if "orphan_entries" in faults:  # a partial restore lost two transactions
        conn.execute(delete(transactions).where(transactions.c.id.in_((17, 18))))


def _snapshots(conn: Connection, entries: list[tuple], faults: frozenset[str],
               now: datetime) -> None:
    """Balances at the end of each of the two months before this one."""
    this_month = datetime(now.year, now.month, 1, tzinfo=UTC)
    ends = [this_month, (this_month - timedelta(days=1)).replace(day=1)]
    rows = []
    for end in ends:
        month = (end - timedelta(days=1)).strftime("%Y-%m")
        for account in range(1, ACCOUNTS + 1):
            total = sum(amt for _, a, amt, at in entries if a == account and at < end)
            rows.append({"account_id": account, "month": month, "period_end": end,
                         "balance": total})
    if "snapshot_drift" in faults:
        rows[3]["balance"] += 500
    conn.execute(monthly_snapshots.insert(), rows)


def _outbox(conn: Connection, faults: frozenset[str], now: datetime) -> None:
    for i in range(60):
        at = now - timedelta(minutes=20 * (60 - i))
        event_id = events.add_event(conn, "ledger.entry_posted", {"n": i}, at,
                                    event_id=f"evt_{i:04d}", status="published")
        events.materialize(conn, event_id, at)
    dead = [("evt_dl_0001", "timeout calling notifications", "notifications"),
            ("evt_dl_0002", "payload invalid: missing amount", "payments"),
            ("evt_dl_0003", "consumer down: read-models", "read-models")]
    if "dlq_growing" in faults:
        dead += [(f"evt_dl_burst_{i:02d}", "contract drift: unknown field 'tip'", "payments")
                 for i in range(DLQ_BURST)]
    for n, (event_id, reason, provider) in enumerate(dead):
        at = now - timedelta(minutes=90 - n)
        events.add_event(conn, "payment.captured", {"dl": event_id}, at, event_id=event_id)
        events.dead_letter(conn, event_id, reason, provider, at)
    if "read_model_stale" in faults:  # published, never materialized
        for i in range(40):
            events.add_event(conn, "ledger.entry_posted", {"stale": i},
                             now - timedelta(minutes=30 - i * 0.5),
                             event_id=f"evt_stale_{i:03d}", status="published")
    if "lag_growing" in faults:
        for i in range(LAG_BACKLOG):
            events.add_event(conn, "ledger.entry_posted", {"lag": i},
                             now - timedelta(seconds=2 * (LAG_BACKLOG - i)),
                             event_id=f"evt_lag_{i:04d}")


def _jobs(conn: Connection, faults: frozenset[str], now: datetime) -> None:
    rows = [{"kind": "insights", "status": "succeeded", "error": None,
             "created_at": now - timedelta(minutes=40 * (30 - i)),
             "updated_at": now - timedelta(minutes=40 * (30 - i) - 1)} for i in range(30)]
    if "failed_jobs" in faults:
        rows += [{"kind": "insights", "status": "failed",
                  "error": "insights: division by zero in weekly trend",
                  "created_at": now - timedelta(minutes=m), "updated_at": now - timedelta(
                      minutes=m)} for m in (50, 35, 20)]
    if "stale_heartbeat" in faults:  # the scheduler kept queueing after the worker died
        rows += [{"kind": "insights", "status": "queued", "error": None,
                  "created_at": now - timedelta(seconds=s), "updated_at": now - timedelta(
                      seconds=s)} for s in range(360, 0, -5)]
    conn.execute(jobs.insert(), rows)
    beat = now - timedelta(minutes=6) if "stale_heartbeat" in faults else now
    conn.execute(worker_heartbeats.insert().values(
        worker_id="worker-1", started_at=now - timedelta(hours=2), beat_at=beat))


def _webhooks(conn: Connection, faults: frozenset[str], now: datetime) -> None:
    rows = [{"event_id": f"evt_stripe_{i:03d}", "type": "checkout.session.completed",
             "status": "processed", "error": None,
             "received_at": now - timedelta(minutes=45 * (20 - i))} for i in range(20)]
    if "webhook_failures" in faults:
        rows += [{"event_id": f"evt_stripe_fail_{m}", "type": "checkout.session.completed",
                  "status": "failed", "error": "signature_mismatch",
                  "received_at": now - timedelta(minutes=m)} for m in (40, 25, 12, 3)]
    conn.execute(webhook_events.insert(), rows)


def _payments(conn: Connection, rng: random.Random, faults: frozenset[str],
              now: datetime) -> None:
    for i in range(40):
        at = now - timedelta(hours=40 - i)
        paid = insert_payment(conn, rng.randint(300, 9000), f"seed-key-{i:04d}", at,
                              payment_id=f"pay_{i:04d}", provider_ref=f"ch_seed_{i:04d}")
        if i % 2 == 0:  # a POS payment releases its machine once
            conn.execute(iot_commands.insert().values(
                payment_id=paid["id"], machine_id=f"washer-{i % 7}", command="release",
                created_at=at))
    if "duplicate_charge" in faults:  # the provider's webhook was processed twice
        insert_payment(conn, 4200, "seed-key-dup", now - timedelta(minutes=30),
                       payment_id="pay_dup_0001", provider_ref="ch_seed_0012")
    if "duplicate_release" in faults:
        conn.execute(iot_commands.insert().values(
            payment_id="pay_0010", machine_id="washer-3", command="release",
            created_at=now - timedelta(minutes=10)))


def _payouts(conn: Connection, rng: random.Random, faults: frozenset[str],
             now: datetime) -> None:
    rows = [{"id": i, "account_id": i, "amount": rng.randint(1000, 50000), "status": "released",
             "released_at": now - timedelta(days=8 - i)} for i in range(1, 9)]
    conn.execute(payouts.insert(), rows)
    exports = [{"payout_id": r["id"], "amount": r["amount"],
                "exported_at": r["released_at"] + timedelta(minutes=5)} for r in rows]
    if "export_mismatch" in faults:
        exports[5]["amount"] -= 700
    conn.execute(payout_exports.insert(), exports)


def _rollups(conn: Connection, faults: frozenset[str], now: datetime) -> None:
    lag_days = 3 if "stale_rollup" in faults else 0
    today = now.date()
    conn.execute(rollups.insert(), [
        {"bucket_date": today - timedelta(days=d), "events": 100 + d,
         "materialized_at": now - timedelta(days=d)} for d in range(lag_days, lag_days + 14)])
    last = now - timedelta(days=lag_days)
    conn.execute(job_runs.insert(), [
        {"job_name": "analytics-rollup", "status": "succeeded",
         "started_at": last - timedelta(hours=h), "finished_at": last - timedelta(hours=h)}
        for h in range(12)])


def _idempotency_story(engine: Engine, faults: frozenset[str], now: datetime) -> None:
    """A client paid and retried with the same key; another payment is still in flight."""
    honour = "idempotency_broken" not in faults
    for attempt in range(2):
        pay(engine, RETRY_KEY, dict(RETRY_BODY), honour_keys=honour,
            payment_id=RETRY_PAYMENT_ID if attempt == 0 else None)
    with engine.begin() as conn:
        conn.execute(idempotency_keys.insert().values(
            key=IN_FLIGHT_KEY, request_hash=request_hash(IN_FLIGHT_BODY), status="in_progress",
            locked_until=now + timedelta(days=1), created_at=now - timedelta(minutes=1)))

