"""``opsgate-demo gate``: start the demo (and Prometheus), run the catalog on it, stop all.

The run gets its own folder under ``.opsgate-demo/runs/`` (SQLite database, rendered
environment file, Prometheus data and log). The catalog runs as a child process
``python -m pytest checks --env <rendered file> --checklist demo|demo-core --allow-mutations``
from the repo root with a fresh ``DEMO_OPS_SECRET`` (the demo is not production, and its smoke
flows create jobs, payments and replays); its exit status is the gate's (0 PASS, 1 BLOCKED).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from opsgate.demo.context import SECRET_VARIABLE
from opsgate.demo.envfile import render
from opsgate.demo.faults import PROMETHEUS_ONLY
from opsgate.demo.prometheus import DEFAULT_PORT as PROMETHEUS_PORT
from opsgate.demo.prometheus import DemoPrometheus, binaries, free_port, port_is_free
from opsgate.demo.server import DEFAULT_PORT, DemoServer

ENV_FILE = Path("fixtures") / "environments" / "demo.yaml"
RUNS_DIR = Path(".opsgate-demo") / "runs"
KEEP_RUNS = 5
BUSY_S = 900
CHILD_GRACE_S = 30


class GateSetupError(RuntimeError):
    """The gate cannot run here (no ``checks/``, no demo environment file, ...)."""


@dataclass
class GateResult:
    """What one demo gate run left: pytest's exit status and the run's folder."""

    exit_code: int
    run_dir: Path
    checklist: str


def run_gate(*, faults: Sequence[str] = (), db_url: str | None = None,
             root: Path | None = None, pytest_args: Sequence[str] = (),
             prometheus: bool | None = None, runs_dir: Path | None = None,
             port: int = DEFAULT_PORT, prometheus_port: int = PROMETHEUS_PORT,
             secret: str | None = None,
             stdout: IO[str] | None = None, say: Callable[[str], None] | None = None,
             ) -> GateResult:
    """Run the demo gate; ``prometheus=None`` uses Prometheus when it is installed.

    ``port`` and ``prometheus_port`` are tried first (a free port is used when they are taken;
    0 always takes a free one). ``secret`` is the run's ``DEMO_OPS_SECRET`` (default: a new
    random one).
    """
    root = (root or Path.cwd()).resolve()
    say = say or _say
    _require(root)
    run_dir = _new_run_dir(runs_dir or root / RUNS_DIR)
    use_prometheus = binaries() is not None if prometheus is None else prometheus
    checklist = "demo" if use_prometheus else "demo-core"
    if not use_prometheus:
        why = "prometheus/promtool not found" if prometheus is None else "without Prometheus"
        say(f"{why}: running the demo-core checklist (no SLO checks)"
            + ("; install Debian's prometheus for the full demo gate" if prometheus is None
               else ""))
        hidden = sorted(set(faults) & PROMETHEUS_ONLY)
        if hidden:
            say(f"fault {', '.join(hidden)} shows only in Prometheus: demo-core cannot see it")
    with ExitStack() as stack:
        demo = _start_demo(faults, db_url or f"sqlite:///{run_dir / 'demo.sqlite'}", port,
                           secret)
        stack.callback(demo.stop)
        prometheus_url = f"http://127.0.0.1:{PROMETHEUS_PORT}"
        if use_prometheus:
            server = DemoPrometheus(run_dir / "prometheus", f"127.0.0.1:{demo.port}",
                                    demo.faults, port=prometheus_port or free_port())
            stack.callback(server.stop)
            server.start()
            prometheus_url = server.url
        injected = ", ".join(sorted(demo.faults)) or "none"
        say(f"demo on {demo.url} ({demo.backend}; faults: {injected})"
            + (f"; Prometheus on {prometheus_url} over 2 h of backfilled history"
               if use_prometheus else ""))
        env_file = run_dir / "demo.yaml"
        variables = render(root / ENV_FILE, env_file, api_url=demo.url,
                           prometheus_url=prometheus_url, db_url=demo.db_url)
        variables[SECRET_VARIABLE] = demo.secret
        command = [sys.executable, "-m", "pytest", "checks", "--env", str(env_file),
                   "--checklist", checklist, "--allow-mutations", *pytest_args]
        code = _run_child(command, root, variables, stdout)
    return GateResult(code, run_dir, checklist)


def _say(line: str) -> None:
    print(f"opsgate-demo: {line}", flush=True)


def _require(root: Path) -> None:
    if not (root / "checks").is_dir():
        raise GateSetupError(f"no checks/ folder in {root}: run the demo gate from the opsgate "
                             "repository root (where `make demo` runs)")
    if not (root / ENV_FILE).is_file():
        raise GateSetupError(f"no {ENV_FILE} in {root}: the demo gate reads its checks there")


def _new_run_dir(runs: Path) -> Path:
    """A fresh folder for this run; older runs beyond ``KEEP_RUNS`` are removed (not those
    touched in the last ``BUSY_S`` seconds: another gate may still be using them)."""
    runs.mkdir(parents=True, exist_ok=True)
    earlier = sorted(p for p in runs.iterdir() if p.is_dir())
    for old in earlier[:max(0, len(earlier) - (KEEP_RUNS - 1))]:
        if time.time() - old.stat().st_mtime > BUSY_S:
            shutil.rmtree(old, ignore_errors=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = runs / f"{stamp}-{secrets.token_hex(3)}"
    run_dir.mkdir()
    return run_dir


def _start_demo(faults: Sequence[str], db_url: str, port: int,
                secret: str | None) -> DemoServer:
    """The demo on ``port``, or on a free one when that is taken."""
    if port and port_is_free(port):
        try:
            return DemoServer(port=port, db_url=db_url, faults=tuple(faults),
                              secret=secret).start()
        except OSError:  # taken since we looked
            pass
    return DemoServer(port=0, db_url=db_url, faults=tuple(faults), secret=secret).start()


def _run_child(command: list[str], cwd: Path, variables: dict[str, str],
               stdout: IO[str] | None) -> int:
    """Run pytest; on Ctrl-C let it finish its report (it got the signal too), then stop it."""
    environment = {**os.environ, **variables}
    child = subprocess.Popen(command, cwd=cwd, env=environment, stdin=subprocess.DEVNULL,
                             stdout=stdout, stderr=subprocess.STDOUT if stdout else None)
    try:
        return child.wait()
    except KeyboardInterrupt:
        try:
            return child.wait(timeout=CHILD_GRACE_S)
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait()
            raise
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
