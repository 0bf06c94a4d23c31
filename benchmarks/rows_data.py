"""Rows 3 and 5: a data invariant over millions of PostgreSQL rows, and a PromQL window.

Row 3 judges "every balance equals the sum of its ledger entries" (``kind: invariant``, rule
``sum_matches``) over the cached ledger database, and runs the very SQL opsgate sent (read
back from its evidence, wrapped the way the SQL probe wraps it) with ``psql -c``. After one
warm-up query, opsgate and psql alternate; medians are compared. The pytest process's own
peak RSS comes from ``wait4``.

Row 5 puts a recording proxy in front of a Prometheus over backfilled data and runs one
``kind: window`` check with a ``promql`` source over 15 minutes: it should send exactly one
range query, not one query per sample. Prometheus' own request counter confirms the count.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench_common import (
    REPO,
    GateRun,
    Result,
    Work,
    log,
    measure,
    median,
    ratio_text,
    run_gate,
    seconds_between,
)
from bench_http import RecordingProxy
from bench_services import Ledger, Prometheus, gauge_history, ledger, psql_command

VIOLATORS = (7, 4242, 31337, 55555, 77777, 88888, 99991)
RSS_LIMIT_MB = 200.0


# ---------------------------------------------------------------- row 3
def ledger_env(work: Work, db: Ledger) -> Path:
    return work.write_yaml("ledger.yaml", {
        "name": "bench-ledger",
        "targets": {"databases": {"ledger": {"url": db.url, "statement_timeout": "120s"}}},
        "checks": [{"id": "D1", "title": "Every balance equals the sum of its ledger entries",
                    "kind": "invariant", "rule": "sum_matches",
                    "parent": {"table": "accounts", "key": "id", "value": "balance"},
                    "children": {"table": "ledger_entries", "key": "account_id",
                                 "value": "amount"},
                    "mask": ["balance", "amount"], "sample": 5}],
    })


def sent_sql(record: dict) -> str:
    """The statement the SQL probe sent: the check's query wrapped for count and sample."""
    from opsgate.probes.sql import violations_sql

    asked = record["evidence"]["asked"]
    return violations_sql(asked["sql"]).replace(":opsgate_sample", str(int(asked["sample"])))


def row_ledger(work: Work, rows: int, accounts: int, repeats: int) -> list[Result]:
    db = ledger(rows, accounts, tuple(v for v in VIOLATORS if v <= accounts))
    env_file = ledger_env(work, db)
    log(f"row 3: sum_matches over {rows:,} rows: opsgate and psql, {repeats} each")
    warm = run_gate(work, env_file, label="ledger")  # warms the cache, tells the SQL sent
    psql = psql_command(db.user, db.name, sent_sql(warm.check("D1")))
    gates, direct = [], []
    for _ in range(repeats):
        done = measure(psql, cwd=REPO, env=work.env())
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.tail()}")
        direct.append(done.seconds)
        gates.append(run_gate(work, env_file, label="ledger"))
    return _ledger_results(db, gates, direct)


def _ledger_results(db: Ledger, gates: list[GateRun], direct: list[float]) -> list[Result]:
    records = [gate.check("D1") for gate in gates]
    check_times = [seconds_between(r["started_at"], r["finished_at"]) for r in records]
    opsgate, walls = median(check_times), median([g.proc.seconds for g in gates])
    psql = median(direct)
    rss = max(gate.proc.max_rss_mb for gate in gates)
    found = records[-1]["observed"]
    judged = records[-1]["outcome"] == "failed" and found == db.violators
    built = (f"generated in {db.built_seconds:.0f} s" if db.built_seconds is not None
             else "reused")
    notes = [f"database {db.name} ({db.rows:,} rows, {db.accounts:,} accounts, {built}); "
             f"opsgate found {found} violators (expected {db.violators}, outcome "
             f"{records[-1]['outcome']}); check times "
             f"{', '.join(f'{t:.2f}' for t in check_times)} s; psql "
             f"{', '.join(f'{t:.2f}' for t in direct)} s; opsgate run wall time "
             f"{walls:.2f} s (median)"]
    return [
        Result("3a", f"sum_matches over {db.rows / 1e6:g}M rows: check time vs psql -c",
               f"{opsgate:.2f} s", f"psql {psql:.2f} s", ratio_text(opsgate / psql),
               "<= 1.2x", judged and opsgate / psql <= 1.2, notes),
        Result("3b", "... peak RSS of the pytest process (wait4 ru_maxrss)",
               f"{rss:.0f} MB", f"limit {RSS_LIMIT_MB:.0f} MB", ratio_text(rss / RSS_LIMIT_MB),
               "< 200 MB", rss < RSS_LIMIT_MB),
        Result("3c", "... opsgate run wall time vs psql -c", f"{walls:.2f} s",
               f"psql {psql:.2f} s", ratio_text(walls / psql), "(info)", None),
    ]


# ---------------------------------------------------------------- row 5
def promql_env(work: Work, url: str) -> Path:
    return work.write_yaml("promql.yaml", {
        "name": "bench-promql",
        "targets": {"prometheus": {"url": url}},
        "checks": [{"id": "M1", "title": "Queue depth stable for 15 minutes", "kind": "window",
                    "sample": {"promql": {"query": "max(bench_queue_depth)"}},
                    "window": "15m", "interval": "1m",
                    "expect": ["non_increasing", "last <= 5"], "label": "queue depth"}],
    })


def row_promql(work: Work) -> list[Result]:
    end = time.time() - 20
    history = gauge_history("bench_queue_depth", 'queue="orders"', [3.0] * 481, 15.0, end)
    prometheus = Prometheus(work.path("prometheus")).start(history)
    proxy = RecordingProxy(prometheus.url).start()
    try:
        log("row 5: one PromQL window check over 15 minutes through a recording proxy")
        before = prometheus.requests_total("/api/v1/query_range")
        run = run_gate(work, promql_env(work, proxy.url), label="promql")
        after = prometheus.requests_total("/api/v1/query_range")
    finally:
        proxy.stop()
        prometheus.stop()
    ranges = proxy.paths.get("/api/v1/query_range", 0)
    record = run.check("M1")
    samples = len(record["evidence"]["seen"].get("samples", []))
    notes = [f"requests at the proxy: {dict(proxy.paths)}; Prometheus' own "
             f"prometheus_http_requests_total{{handler=\"/api/v1/query_range\"}} rose by "
             f"{after - before:g}; outcome {record['outcome']} with {samples} points; check "
             f"time {seconds_between(record['started_at'], record['finished_at']):.3f} s"]
    ok = ranges == 1 and sum(proxy.paths.values()) == 1 and record["outcome"] == "passed"
    return [Result("5", "PromQL window check (15m, 1m): range queries sent per check",
                   f"{ranges} request(s)", "1 per check", ratio_text(ranges / 1), "== 1",
                   ok, notes)]
