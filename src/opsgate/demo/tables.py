"""The demo's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Amounts are integer cents; times are UTC (``timestamptz`` on PostgreSQL, ISO text on SQLite).
Like many real systems the ledger has no foreign keys to transactions or accounts: that is
what lets a partial restore leave orphans for the checks to find.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()
UTC_TIME = DateTime(timezone=True)

#: The marker that says "the demo created this database": it never touches one without it.
demo_meta = Table(
    "opsgate_demo_meta", metadata,
    Column("key", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)
accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(80), nullable=False),
    Column("balance", BigInteger, nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
transactions = Table(
    "transactions", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
ledger_entries = Table(
    "ledger_entries", metadata,
    Column("id", Integer, primary_key=True),
    Column("transaction_id", Integer, nullable=False),
    Column("account_id", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("memo", String(120), nullable=False, default=""),
    Column("created_at", UTC_TIME, nullable=False),
    Column("updated_at", UTC_TIME, nullable=True),
)
monthly_snapshots = Table(
    "monthly_snapshots", metadata,
    Column("account_id", Integer, primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("period_end", UTC_TIME, nullable=False),
    Column("balance", BigInteger, nullable=False),
)
outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("topic", String(60), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTC_TIME, nullable=False),
    Column("published_at", UTC_TIME, nullable=True),
)
dead_letters = Table(
    "dead_letters", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(40), nullable=False),
    Column("reason", String(120), nullable=False),
    Column("provider", String(40), nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
    Column("replayed_at", UTC_TIME, nullable=True),
)
read_model_events = Table(
    "read_model_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(40), nullable=False),
    Column("materialized_at", UTC_TIME, nullable=False),
)
jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", String(200), nullable=True),
    Column("created_at", UTC_TIME, nullable=False),
    Column("updated_at", UTC_TIME, nullable=False),
)
worker_heartbeats = Table(
    "worker_heartbeats", metadata,
    Column("worker_id", String(40), primary_key=True),
    Column("started_at", UTC_TIME, nullable=False),
    Column("beat_at", UTC_TIME, nullable=False),
)
job_runs = Table(
    "job_runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("job_name", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", UTC_TIME, nullable=False),
    Column("finished_at", UTC_TIME, nullable=True),
)
webhook_events = Table(
    "webhook_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("event_id", String(60), nullable=False),
    Column("type", String(60), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", String(120), nullable=True),
    Column("received_at", UTC_TIME, nullable=False),
)
payments = Table(
    "payments", metadata,
    Column("id", String(40), primary_key=True),
    Column("provider_ref", String(60), nullable=False),
    Column("idempotency_key", String(80), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("key", String(80), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", Text, nullable=True),
    Column("locked_until", UTC_TIME, nullable=True),
    Column("created_at", UTC_TIME, nullable=False),
)
iot_commands = Table(
    "iot_commands", metadata,
    Column("id", Integer, primary_key=True),
    Column("payment_id", String(40), nullable=False),
    Column("machine_id", String(40), nullable=False),
    Column("command", String(20), nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
pos_authorizations = Table(
    "pos_authorizations", metadata,
    Column("id", Integer, primary_key=True),
    Column("tenant", String(60), nullable=False),
    Column("authorized", Boolean, nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
rollups = Table(
    "rollups", metadata,
    Column("bucket_date", Date, primary_key=True),
    Column("events", Integer, nullable=False),
    Column("materialized_at", UTC_TIME, nullable=False),
)
schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True),
    Column("name", String(80), nullable=False),
    Column("applied_at", UTC_TIME, nullable=False),
)
payouts = Table(
    "payouts", metadata,
    Column("id", Integer, primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("released_at", UTC_TIME, nullable=True),
)
payout_exports = Table(
    "payout_exports", metadata,
    Column("id", Integer, primary_key=True),
    Column("payout_id", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("exported_at", UTC_TIME, nullable=False),
)
sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(80), nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False, index=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", UTC_TIME, nullable=False),
)
