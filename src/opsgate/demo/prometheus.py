"""A Prometheus on loopback over the demo's backfilled history, scraping the live demo.

``promtool tsdb create-blocks-from openmetrics`` writes two hours of history (ending a minute
before now) into a fresh data directory; ``prometheus`` then serves it and scrapes the demo's
``/metrics`` every 2 s (job ``opsgate-demo``) so the same series stay alive up to now, and
evaluates the demo's alerting rules. ``start()`` returns once Prometheus is ready, has scraped
the demo once and has evaluated its rules once; ``stop()`` terminates and waits for it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from opsgate.demo.history import JOB, openmetrics

HOST = "127.0.0.1"
DEFAULT_PORT = 19090
READY_TIMEOUT_S = 20.0
HISTORY_END_BEFORE_NOW_S = 60.0

RULES = f"""\
groups:
  - name: opsgate-demo
    rules:
      - alert: DemoHighErrorRate
        expr: >-
          sum(rate(http_requests_total{{job="{JOB}",status=~"5.."}}[5m]))
          / sum(rate(http_requests_total{{job="{JOB}"}}[5m])) > 0.2
        labels: {{severity: critical}}
        annotations: {{summary: "more than 20% of requests fail (Sev1)"}}
      - alert: DemoTargetDown
        expr: up{{job="{JOB}"}} == 0
        labels: {{severity: critical}}
      - alert: DemoDeadLettersGrowing
        expr: delta(outbox_dead_letters{{job="{JOB}"}}[10m]) > 0
        labels: {{severity: warning}}
      - alert: DemoSyncStale
        expr: time() - sync_last_success_timestamp_seconds{{job="{JOB}"}} > 60
        labels: {{severity: warning}}
"""


class PrometheusError(RuntimeError):
    """Prometheus or promtool failed; the message says where its log is."""


def binaries() -> tuple[str, str] | None:
    """The paths of ``prometheus`` and ``promtool``, or None when either is missing."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return (prometheus, promtool) if prometheus and promtool else None


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class DemoPrometheus:
    """Prometheus for one demo run, in its own folder ``home``."""

    def __init__(self, home: Path, target: str, faults: frozenset[str], *,
                 port: int = DEFAULT_PORT):
        found = binaries()
        if found is None:
            raise PrometheusError("prometheus and promtool are not both on PATH")
        self.prometheus, self.promtool = found
        self.home, self.target, self.faults, self.port = home, target, faults, port
        self.process: subprocess.Popen | None = None
        self.log = home / "prometheus.log"

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> DemoPrometheus:
        """Backfill, start, and wait until it is ready, has scraped and has evaluated."""
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=False)
        self._backfill(data)
        config = self._write_config()
        atexit.register(self.stop)
        for _ in range(3):  # another process may take the port before Prometheus binds it
            if not port_is_free(self.port):
                self.port = free_port()
            if self._launch(data, config):
                return self
        raise PrometheusError(f"Prometheus could not bind a port; its log is {self.log}")

    def _backfill(self, data: Path) -> None:
        source = self.home / "history.om"
        source.write_text(openmetrics(self.faults, self.target,
                                      time.time() - HISTORY_END_BEFORE_NOW_S))
        done = subprocess.run([self.promtool, "tsdb", "create-blocks-from", "openmetrics",
                               str(source), str(data)], capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise PrometheusError(f"promtool could not backfill {source} (exit "
                                  f"{done.returncode}): {(done.stderr or done.stdout)[-500:]}")

    def _write_config(self) -> Path:
        (self.home / "rules.yml").write_text(RULES)
        config = self.home / "prometheus.yml"
        config.write_text(f"""\
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files: [rules.yml]
scrape_configs:
  - job_name: {JOB}
    static_configs:
      - targets: ["{self.target}"]
""")
        return config

    def _launch(self, data: Path, config: Path) -> bool:
        """Start it; False when the port was taken, PrometheusError on other failures."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address={HOST}:{self.port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        deadline = time.monotonic() + READY_TIMEOUT_S
        waits = (self._ready, self._scraped, self._evaluated)
        for wait in waits:
            while not wait():
                if self.process.poll() is not None:
                    tail = self.log.read_text(errors="replace")[-1500:]
                    self.process = None
                    if "address already in use" in tail:
                        return False
                    raise PrometheusError(f"Prometheus exited; its log {self.log} ends:\n{tail}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise PrometheusError(f"Prometheus did not get ready within "
                                          f"{READY_TIMEOUT_S:g} s ({wait.__name__.strip('_')}); "
                                          f"its log is {self.log}")
                time.sleep(0.1)
        return True

    def _api(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2) as response:
                return json.load(response) if path.startswith("/api/") else response.status
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _ready(self) -> bool:
        return self._api("/-/ready") == 200

    def _scraped(self) -> bool:
        answer = self._api("/api/v1/targets?state=active") or {}
        targets = (answer.get("data") or {}).get("activeTargets") or []
        return any(t.get("health") == "up" for t in targets)

    def _evaluated(self) -> bool:
        answer = self._api("/api/v1/rules") or {}
        groups = (answer.get("data") or {}).get("groups") or []
        return bool(groups) and all(not str(g.get("lastEvaluation", "0001")).startswith("0001")
                                    for g in groups)

    def stop(self) -> None:
        """Terminate Prometheus and wait for it (kill after 10 s). Idempotent."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
