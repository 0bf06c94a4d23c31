"""Catalog row F3 read from the database: ``F3-checkout-webhooks-processed`` (no Stripe checkout
event of the last hour left unprocessed) and ``F3-last-checkout-processed`` (one was processed in
the last 30 minutes), as the MVP example configures them, over a real PostgreSQL
``webhook_events`` table: pass when the webhooks flow, fail when a checkout event is left behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.catalog import Run, example_check, run_catalog, write_environment

pytestmark = pytest.mark.postgres

PVM = "mvp-backend.example"
CHECKS = ("F3-checkout-webhooks-processed", "F3-last-checkout-processed")
TABLE = """
create table webhook_events (
  id text primary key, provider text not null, type text not null, status text not null,
  received_at timestamptz not null, processed_at timestamptz);
"""
FLOWING = """
insert into webhook_events values
  ('evt_1', 'stripe', 'checkout.session.completed', 'processed',
   now() - interval '40 minutes', now() - interval '40 minutes'),
  ('evt_2', 'stripe', 'checkout.session.completed', 'processed',
   now() - interval '5 minutes', now() - interval '5 minutes'),
  -- still within its two minutes of grace: not yet a violation
  ('evt_3', 'stripe', 'checkout.session.completed', 'received', now() - interval '30 seconds',
   null),
  -- another type, and a checkout from yesterday: outside the rule
  ('evt_4', 'stripe', 'invoice.paid', 'failed', now() - interval '10 minutes', null),
  ('evt_5', 'stripe', 'checkout.session.completed', 'failed', now() - interval '1 day', null);
"""
LEFT_BEHIND = """
insert into webhook_events values
  ('evt_1', 'stripe', 'checkout.session.completed', 'processed',
   now() - interval '50 minutes', now() - interval '50 minutes'),
  ('evt_9', 'stripe', 'checkout.session.completed', 'failed', now() - interval '10 minutes',
   null);
"""


def run_f3(folder: Path, url: str) -> Run:
    checks = [example_check(PVM, ident, database=None) for ident in CHECKS]
    path = write_environment(folder, "webhooks", {"databases": {"main": {"url": url}}}, checks)
    return run_catalog(folder, [path])


def test_checkout_webhooks_processed_in_time_pass(pg_database, tmp_path) -> None:
    with pg_database.connect() as admin:
        admin.execute(TABLE + FLOWING)
    run = run_f3(tmp_path, pg_database.url)
    assert run.outcomes("webhooks") == dict.fromkeys(CHECKS, "passed"), run.explain()


def test_a_checkout_event_left_unprocessed_fails_and_is_named(pg_database, tmp_path) -> None:
    with pg_database.connect() as admin:
        admin.execute(TABLE + LEFT_BEHIND)
    run = run_f3(tmp_path, pg_database.url)
    assert run.outcomes("webhooks") == {"F3-checkout-webhooks-processed": "failed",
                                        "F3-last-checkout-processed": "failed"}, run.explain()
    violations = run.check("F3-checkout-webhooks-processed", "webhooks")
    assert violations["message"] == "violations (1) == 0", violations["message"]
    assert "evt_9" in str(violations["evidence"]), violations["evidence"]
    freshness = run.check("F3-last-checkout-processed", "webhooks")
    assert re.fullmatch(r"last processed checkout webhook \((\d+)s\) <= 1800s",
                        freshness["message"]), freshness["message"]
