"""The demo target for the suite's own tests (a pytest plugin module).

``demo_server`` starts demos in this process on free ports (SQLite in the test's tmp folder by
default) and stops them at teardown. ``run_demo_gates`` runs several demo gates at once (each
its own demo, Prometheus and pytest child; they spend most of their time waiting, so running
them side by side keeps the module short on two cores) and returns what each left: pytest's
exit status, its output and the run's ``evidence.json``.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opsgate.demo.gate import run_gate
from opsgate.demo.server import DemoServer

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-ops-secret-0123"
#: Plugins the catalog run does not need: each costs start-up time in every pytest child.
LEAN_PYTEST = ("-p", "no:hypothesispytest", "-p", "no:xdist", "-p", "no:anyio")


@dataclass(frozen=True)
class GateSpec:
    """One demo gate to run: its faults, whether with Prometheus, and its database."""

    faults: tuple[str, ...] = ()
    prometheus: bool = False
    db_url: str | None = None


@dataclass
class GateRun:
    """What one demo gate run left."""

    spec: GateSpec
    exit_code: int | None = None
    output: str = ""
    evidence: dict[str, Any] | None = None
    error: str | None = None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    folder: Path | None = None

    @property
    def outcomes(self) -> dict[str, str]:
        """Check id -> outcome."""
        return {ident: check["outcome"] for ident, check in self.checks.items()}

    @property
    def red(self) -> set[str]:
        """The ids of the checks that did not pass."""
        return {ident for ident, outcome in self.outcomes.items() if outcome != "passed"}

    def files_showing(self, text: str) -> list[str]:
        """The report files (and the gate's output) in which ``text`` appears."""
        assert self.folder is not None
        shown = [str(path) for path in sorted((self.folder / "reports").rglob("*"))
                 if path.is_file() and text.encode() in path.read_bytes()]
        return shown + (["output"] if text in self.output else [])

    def explain(self) -> str:
        """Everything useful when an assertion about this run fails."""
        lines = [f"gate {self.spec}: exit {self.exit_code}"]
        if self.error:
            lines.append(self.error)
        lines += [f"  {ident}: {check['outcome']}: {check['message']}"
                  for ident, check in self.checks.items() if check["outcome"] != "passed"]
        lines.append(self.output[-3000:])
        return "\n".join(lines)


def run_demo_gate(spec: GateSpec, folder: Path) -> GateRun:
    """Run one demo gate in ``folder`` (free ports, report and runs inside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    run = GateRun(spec, folder=folder)
    reports = folder / "reports"
    try:
        with open(folder / "output.txt", "w") as output:
            result = run_gate(faults=spec.faults, db_url=spec.db_url, root=REPO,
                              prometheus=spec.prometheus, runs_dir=folder / "runs", port=0,
                              prometheus_port=0, secret=SECRET, stdout=output,
                              say=lambda line: print(f"opsgate-demo: {line}", file=output,
                                                     flush=True),
                              pytest_args=("--report-dir", str(reports), *LEAN_PYTEST))
        run.exit_code = result.exit_code
    except Exception:
        run.error = traceback.format_exc()
    run.output = (folder / "output.txt").read_text(errors="replace")
    found = sorted(reports.glob("*/evidence.json")) if reports.is_dir() else []
    if found:
        run.evidence = json.loads(found[-1].read_text())
        run.checks = {check["id"]: check for check in run.evidence["checks"]}
    return run


def run_demo_gates(specs: Mapping[str, GateSpec], folder: Path,
                   workers: int = 3) -> dict[str, GateRun]:
    """Run every gate of ``specs`` (name -> spec), ``workers`` at a time."""
    names = list(specs)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="demo-gate") as pool:
        runs = pool.map(lambda name: run_demo_gate(specs[name], folder / name), names)
        return dict(zip(names, runs, strict=True))


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[Callable[..., DemoServer]]:
    """``start(faults=(), db_url=None) -> DemoServer`` on a free port, secret ``SECRET``."""
    started: list[DemoServer] = []

    def start(faults: tuple[str, ...] = (), db_url: str | None = None) -> DemoServer:
        url = db_url or f"sqlite:///{tmp_path / f'demo-{len(started)}.sqlite'}"
        server = DemoServer(port=0, db_url=url, faults=faults, secret=SECRET)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
