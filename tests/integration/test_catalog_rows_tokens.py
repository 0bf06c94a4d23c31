"""Catalog row H4 with a bearer token: ``H4-ops-no-token`` and ``H4-ops-wrong-token`` as the MVP
example configures them, against a real HTTP server whose ops status needs the admin token.
The target carries the real token (from ``${VAR}``); the checks drop it or send a wrong one.
Pass when the server refuses them; fail when it lets them in (fail open).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.catalog import Run, example_check, run_catalog, write_environment
from tests.support.http import serve

PVM = "mvp-backend.example"
CHECKS = ("H4-ops-no-token", "H4-ops-wrong-token")
TOKEN = "opsgate-test-admin-token-7f3a"


def ops_status(fail_open: bool, seen: list[str | None]) -> Callable[..., Any]:
    """``/api/ops/status``: 200 with the admin token, else 401 (or 200 anyway, fail open)."""
    @Request.application
    def app(request: Request) -> Response:
        sent = request.headers.get("Authorization")
        seen.append(sent)
        allowed = sent == f"Bearer {TOKEN}" or fail_open
        return Response(json.dumps({"ok": allowed}), status=200 if allowed else 401,
                        content_type="application/json")

    return app


def run_h4(tmp_path, fail_open: bool) -> tuple[Run, list[str | None]]:
    seen: list[str | None] = []
    checks = [example_check(PVM, ident) for ident in CHECKS]
    with serve(ops_status(fail_open, seen)) as url:
        target = {"base_url": url, "headers": {"Authorization": "Bearer ${OPS_ADMIN_TOKEN}"}}
        path = write_environment(tmp_path, "ops", {"http": {"ops": target}}, checks)
        run = run_catalog(tmp_path, [path], environ={"OPS_ADMIN_TOKEN": TOKEN})
    return run, seen


def test_ops_status_refusing_a_missing_or_wrong_token_passes(tmp_path) -> None:
    run, seen = run_h4(tmp_path, fail_open=False)
    assert run.outcomes("ops") == dict.fromkeys(CHECKS, "passed"), run.explain()
    assert sorted(seen, key=str) == ["Bearer opsgate-deliberately-wrong-token", None]


def test_ops_status_letting_them_in_fails(tmp_path) -> None:
    run, _ = run_h4(tmp_path, fail_open=True)
    assert run.outcomes("ops") == dict.fromkeys(CHECKS, "failed"), run.explain()
    for ident in CHECKS:
        assert run.check(ident, "ops")["message"] == "status (200) in [401, 403]"
    assert TOKEN not in run.explain()
