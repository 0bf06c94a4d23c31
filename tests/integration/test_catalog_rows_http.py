"""Catalog rows H2-H5 and M6 against the demo target: pass healthy, fail for the real condition.

The checks are the example environments' own (``example_check``), pointed at the demo's paths
(its secret header is ``X-Ops-Secret``; everything they judge is as written). One run of
``pytest checks --allow-mutations`` measures them in four environments at once:

- ``healthy``: a healthy demo;
- ``sick``: a demo with the faults ``connect_not_ready`` (H2), ``dashboard_down`` (H3),
  ``wrong_secret_accepted`` (H4), ``org_scope_missing`` (H5) and ``db_error`` (M6);
- ``worker``: a demo whose worker is dead (``stale_heartbeat``: only M6 is measured there);
- ``stopped``: the dashboard's server is gone (nothing listens on its port);
- ``production``: ``production: true`` over a third demo: the ``production_safe`` H4 replay
  probe runs, the demo's replay flow Q7 (mutating, not production-safe) is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsgate.demo.context import SECRET_HEADER
from opsgate.demo.server import DemoServer
from tests.support.catalog import Run, example_check, run_catalog, write_environment
from tests.support.demo import SECRET
from tests.support.prometheus import free_port

OB, PVM = "orya-obraflow.example", "mvp-backend.example"
WRONG = "opsgate-deliberately-wrong-secret"
SICK = ("connect_not_ready", "dashboard_down", "wrong_secret_accepted", "org_scope_missing",
        "db_error")


def on_demo(file: str, ident: str, **request: Any) -> dict[str, Any]:
    """The example check with its request's keys replaced by the demo's (``request``)."""
    check = example_check(file, ident)
    check["request"] = {**check["request"], **request}
    return check


def checks() -> list[dict[str, Any]]:
    """The checks measured in ``healthy`` and ``sick``."""
    m6 = example_check(PVM, "M6-ready-15m", window="2s", interval="500ms")
    return [
        on_demo(OB, "H2-stripe-connect-ready", path="/api/payouts/status",
                params={"organizationId": "org-smoke"}),
        on_demo(OB, "H3-ops-dashboard", path="/ops/dashboard"),
        on_demo(OB, "H4-dlq-no-secret", path="/internal/outbox/dlq",
                headers={SECRET_HEADER: None}),
        on_demo(OB, "H4-dlq-wrong-secret", path="/internal/outbox/dlq",
                headers={SECRET_HEADER: WRONG}),
        on_demo(OB, "H5-no-org-read", path="/internal/analytics/rollups"),
        m6,
    ]


def targets(url: str) -> dict[str, Any]:
    """The example's HTTP targets (api, owner, ops), all on one demo; api has the secret."""
    return {"http": {"api": {"base_url": url, "headers": {SECRET_HEADER: "${DEMO_OPS_SECRET}"},
                             "timeout": "5s"},
                     "owner": {"base_url": url, "timeout": "5s"},
                     "ops": {"base_url": url, "timeout": "5s"}}}


def dlq_count(server: DemoServer) -> int:
    """Dead letters waiting on ``server``."""
    answer = httpx.get(f"{server.url}/internal/outbox/dlq", headers={SECRET_HEADER: SECRET})
    return answer.json()["count"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, DemoServer]]:
    """The one run of this module, and the production demo (to see what it did there)."""
    folder = tmp_path_factory.mktemp("rows-http")
    servers = []
    try:
        for name, faults in (("healthy", ()), ("sick", SICK), ("worker", ("stale_heartbeat",)),
                             ("production", ())):
            servers.append(DemoServer(port=0, db_url=f"sqlite:///{folder / name}.sqlite",
                                      faults=faults, secret=SECRET).start())
        healthy, sick, worker, production = servers
        demo_q7 = example_check("demo", "Q7", checklists=None, target="api")
        replay_probe = on_demo(OB, "H4-replay-no-secret", path="/internal/outbox/replay",
                               headers={SECRET_HEADER: None})
        environments = [
            write_environment(folder, "healthy", targets(healthy.url), [*checks(), demo_q7]),
            write_environment(folder, "sick", targets(sick.url), checks()),
            write_environment(folder, "worker", targets(worker.url), [checks()[-1]]),
            write_environment(folder, "stopped", targets(f"http://127.0.0.1:{free_port()}"),
                              [on_demo(OB, "H3-ops-dashboard", path="/ops/dashboard")]),
            write_environment(folder, "production", targets(production.url),
                              [replay_probe, demo_q7], production=True),
        ]
        assert dlq_count(production) == 2
        yield (run_catalog(folder, environments, "--allow-mutations",
                           environ={"DEMO_OPS_SECRET": SECRET}), production)
    finally:
        for server in servers:
            server.stop()


def judgements(record: dict[str, Any]) -> dict[str, tuple[Any, bool | None]]:
    """Label -> (observed, ok) of a record's judgements."""
    return {j["label"]: (j["observed"], j["ok"]) for j in record["judgements"]}


def test_every_check_passes_on_the_healthy_demo(run):
    gate, _ = run
    assert gate.result.ret == 1, gate.explain()  # the sick and stopped environments block
    assert set(gate.outcomes("healthy").values()) == {"passed"}, gate.outcomes("healthy")
    assert len(gate.outcomes("healthy")) == len(checks()) + 1


def test_h2_connect_account_not_ready_fails(run):
    gate, _ = run
    record = gate.check("H2-stripe-connect-ready", "sick")
    assert record["outcome"] == "failed", record["message"]
    assert judgements(record) == {"status": (200, True), "json payoutsEnabled": (False, False),
                                  "json length(requirements.currentlyDue)": (1, False)}
    assert "json payoutsenabled (false) == true" in record["message"].lower()
    healthy = gate.check("H2-stripe-connect-ready", "healthy")
    assert judgements(healthy)["json payoutsEnabled"] == (True, True)


def test_h3_dashboard_down_fails_and_a_stopped_server_errors(run):
    gate, _ = run
    down = gate.check("H3-ops-dashboard", "sick")
    assert down["outcome"] == "failed" and judgements(down) == {"status": (503, False)}
    stopped = gate.check("H3-ops-dashboard", "stopped")
    assert stopped["outcome"] == "error" and stopped["reason"] == "connection", stopped
    assert judgements(gate.check("H3-ops-dashboard", "healthy")) == {"status": (200, True)}


def test_h4_wrong_secret_accepted_fails(run):
    gate, _ = run
    accepted = gate.check("H4-dlq-wrong-secret", "sick")
    assert accepted["outcome"] == "failed" and judgements(accepted) == {"status": (200, False)}
    assert gate.check("H4-dlq-wrong-secret", "sick")["evidence"]["asked"]
    assert judgements(gate.check("H4-dlq-wrong-secret", "healthy")) == {"status": (403, True)}
    # a missing header is still refused under this fault: only the wrong-secret check is red
    assert judgements(gate.check("H4-dlq-no-secret", "sick")) == {"status": (401, True)}
    assert WRONG not in gate.result.stdout.str()


def test_h4_production_safe_check_runs_in_production_and_an_unsafe_one_is_refused(run):
    gate, production = run
    probe = gate.check("H4-replay-no-secret", "production")
    assert probe["outcome"] == "passed" and judgements(probe) == {"status": (401, True)}
    refused = gate.check("Q7", "production")
    assert refused["outcome"] == "not_run", refused
    assert "against production environment 'production'" in refused["message"]
    assert gate.outcome("Q7", "healthy") == "passed"  # the same check runs off production
    assert dlq_count(production) == 2  # nothing was replayed in production
    assert "production:Q7" in gate.document["blocking"]


def test_h5_read_without_organization_answered_blocks(run):
    gate, _ = run
    leaked = gate.check("H5-no-org-read", "sick")
    # 200 instead of a refusal, and no error code to read: it blocks (an error, since one
    # condition could not be judged), and the evidence shows what leaked
    assert leaked["outcome"] in ("failed", "error"), leaked
    assert judgements(leaked) == {"status": (200, False), "json error": (None, None)}
    assert '"rollups":[' in leaked["evidence"]["seen"]["body_excerpt"]
    assert "sick:H5-no-org-read" in gate.document["blocking"]
    assert judgements(gate.check("H5-no-org-read", "healthy")) == {
        "status": (400, True), "json error": ("organization_required", True)}


def test_m6_ready_db_and_worker_as_one_and_zero(run):
    gate, _ = run
    records = {env: gate.check("M6-ready-15m", env) for env in ("healthy", "sick", "worker")}
    assert records["healthy"]["outcome"] == "passed", records["healthy"]["message"]
    for env, fact in (("sick", '"db_ok":false'), ("worker", '"worker_running":false')):
        assert records[env]["outcome"] == "failed", records[env]["message"]
        assert fact in records[env]["evidence"]["seen"]["last_answer"]["body_excerpt"]
    values = {env: {value for _, value in record["evidence"]["seen"]["samples"]}
              for env, record in records.items()}
    assert values == {"healthy": {1}, "sick": {0}, "worker": {0}}
    assert all(len(r["evidence"]["seen"]["samples"]) >= 4 for r in records.values())

