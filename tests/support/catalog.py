"""Running configured checks through the plugin and reading their evidence (for the tests).

``run_gate(pytester, targets, checks)`` writes one environment file and runs ``pytest checks
--env FILE`` in a subprocess. ``run_catalog(folder, environments)`` does the same for several
environments at once without pytester (so a module-scoped fixture can run it once).
``example_check(file, ident)`` is a check exactly as ``fixtures/environments/<file>.yaml``
configures it. Both return a :class:`Run`: pytest's result and the run's evidence.json.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = REPO / "fixtures" / "environments"
#: Plugins of the suite's own tests that a gate run does not need.
QUIET = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")


@dataclass
class Gate:
    """One run of the catalog: pytest's result and the run's evidence.json (when written)."""

    result: pytest.RunResult
    document: dict[str, Any] | None

    @property
    def output(self) -> str:
        return self.result.stdout.str() + "\n" + self.result.stderr.str()

    def check(self, ident: str) -> dict[str, Any]:
        """The evidence record of configured check ``ident``."""
        assert self.document is not None, f"no evidence.json was written:\n{self.output}"
        found = [c for c in self.document["checks"] if c["id"] == ident]
        assert len(found) == 1, (f"{ident} not in {[c['id'] for c in self.document['checks']]}"
                                 f"\n{self.output}")
        return found[0]


@dataclass
class Run:
    """One run of the catalog: pytest's result, its evidence.json and how long it took."""

    result: pytest.RunResult
    document: dict[str, Any] | None
    seconds: float

    def check(self, ident: str, env: str | None = None) -> dict[str, Any]:
        """The evidence record of check ``ident`` (of environment ``env`` when given)."""
        assert self.document is not None, self.result.stdout.str() + self.result.stderr.str()
        found = [c for c in self.document["checks"]
                 if c["id"] == ident and env in (None, c["environment"])]
        present = [(c["environment"], c["id"]) for c in self.document["checks"]]
        assert len(found) == 1, f"{env}:{ident} not in {present}\n{self.explain()}"
        return found[0]

    def outcome(self, ident: str, env: str | None = None) -> str:
        """The outcome of check ``ident``."""
        return self.check(ident, env)["outcome"]

    def seen(self, ident: str, env: str | None = None) -> Any:
        """What check ``ident`` saw (its evidence's ``seen``)."""
        return self.check(ident, env)["evidence"]["seen"]

    def outcomes(self, env: str) -> dict[str, str]:
        """Check id -> outcome, for the checks of ``env``."""
        assert self.document is not None, self.result.stdout.str() + self.result.stderr.str()
        return {c["id"]: c["outcome"] for c in self.document["checks"]
                if c["environment"] == env}

    def explain(self) -> str:
        """The run's output, for an assertion message."""
        return self.result.stdout.str()[-4000:] + self.result.stderr.str()[-2000:]


@functools.cache
def _example(file: str) -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load((ENVIRONMENTS / f"{file}.yaml").read_text())
    return {check["id"]: check for check in loaded["checks"]}


def example_check(file: str, ident: str, **changes: Any) -> dict[str, Any]:
    """Check ``ident`` as ``fixtures/environments/<file>.yaml`` writes it (a copy).

    ``changes`` replace top-level keys (``None`` removes one), e.g. ``target=None`` for an
    environment with one target or a shorter ``window``.
    """
    check = copy.deepcopy(_example(file)[ident])
    for key, value in changes.items():
        if value is None:
            check.pop(key, None)
        else:
            check[key] = value
    return check


def write_environment(folder: Path, name: str, targets: Mapping[str, Any],
                      checks: Sequence[Mapping[str, Any]], **fields: Any) -> Path:
    """``folder/<name>.yaml``: an environment with ``targets``, ``checks`` and ``fields``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    document = {"name": name, **fields, "targets": dict(targets), "checks": list(checks)}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _evidence(out: Path) -> dict[str, Any] | None:
    runs = list(out.iterdir()) if out.is_dir() else []
    evidence = runs[0] / "evidence.json" if len(runs) == 1 else None
    return json.loads(evidence.read_text()) if evidence and evidence.is_file() else None


def run_gate(pytester: pytest.Pytester, targets: dict[str, Any],
             checks: list[dict[str, Any]], name: str = "itest") -> Run:
    """Run ``checks`` against ``targets`` through the plugin in a subprocess."""
    if not (pytester.path / "checks").exists():
        shutil.copytree(REPO / "checks", pytester.path / "checks")
    path = write_environment(pytester.path, name, targets, checks)
    out = pytester.path / "out"
    shutil.rmtree(out, ignore_errors=True)
    begin = time.monotonic()
    result = pytester.runpytest_subprocess("checks", "--env", str(path), "--report-dir",
                                           str(out), *QUIET)
    return Run(result, _evidence(out), time.monotonic() - begin)


def run_catalog(folder: Path, environments: Sequence[Path], *args: str,
                environ: Mapping[str, str] | None = None, timeout: float = 120) -> Run:
    """``pytest checks --env E1 --env E2 ... ARGS`` in ``folder`` (a subprocess, no pytester).

    ``environ`` adds process environment variables (the ``${VAR}`` of the files).
    """
    if not (folder / "checks").exists():
        shutil.copytree(REPO / "checks", folder / "checks")
    out = folder / "out"
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "pytest", "checks", "--report-dir", str(out), *QUIET,
               *(part for path in environments for part in ("--env", str(path))), *args]
    begin = time.monotonic()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(environ or {})})
    seconds = time.monotonic() - begin
    result = pytest.RunResult(done.returncode, done.stdout.splitlines(),
                              done.stderr.splitlines(), seconds)
    return Run(result, _evidence(out), seconds)
