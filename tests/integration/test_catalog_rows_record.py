"""Catalog row T4 (operation record): the two checks that record what is deployed, as the
example environments configure them, against a real HTTP server; pass when the service says
what it runs, fail when it does not. ``T4-deployed-revision`` (O/B) reads the API's version;
``T4-canary-config`` (P/V/M) reads the applied POS canary configuration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from tests.support.catalog import Run, example_check, run_catalog, write_environment
from tests.support.http import serve

HEALTHY = {
    "/api/version": {"gitSha": "4f2c9e1", "environment": "production"},
    "/api/ops/payments/pos-canary": {"mode": "allowlist", "allowlist": ["t-1"],
                                     "blocklist": []},
}
SICK = {  # a build without its revision, and a canary answering a mode it does not know
    "/api/version": {"environment": "production"},
    "/api/ops/payments/pos-canary": {"mode": "everyone", "allowlist": ["t-1"],
                                     "blocklist": []},
}


def answering(answers: dict[str, Any]) -> Callable[..., Any]:
    """A WSGI app answering each path of ``answers`` with its JSON (404 elsewhere)."""
    @Request.application
    def app(request: Request) -> Response:
        if request.path not in answers:
            return Response("{}", status=404, content_type="application/json")
        return Response(json.dumps(answers[request.path]), content_type="application/json")

    return app


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder: Path = tmp_path_factory.mktemp("t4")
    checks = [example_check("orya-obraflow.example", "T4-deployed-revision"),
              example_check("mvp-backend.example", "T4-canary-config")]
    with serve(answering(HEALTHY)) as healthy, serve(answering(SICK)) as sick:
        files = [write_environment(folder, name, {"http": {"api": {"base_url": url},
                                                           "ops": {"base_url": url}}}, checks)
                 for name, url in {"healthy": healthy, "sick": sick}.items()]
        yield run_catalog(folder, files)


def test_the_deployed_revision_and_canary_config_are_recorded_when_answered(run: Run) -> None:
    assert run.outcomes("healthy") == {"T4-deployed-revision": "passed",
                                       "T4-canary-config": "passed"}, run.explain()


def test_a_missing_revision_or_unknown_canary_mode_fails(run: Run) -> None:
    assert run.outcomes("sick") == {"T4-deployed-revision": "failed",
                                    "T4-canary-config": "failed"}, run.explain()
    messages = {c["id"]: c["message"] for c in run.document["checks"]
                if c["environment"] == "sick"}
    assert "gitSha" in messages["T4-deployed-revision"]
    assert '"everyone"' in messages["T4-canary-config"]
