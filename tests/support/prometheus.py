"""A real Prometheus over backfilled data for the suite's own tests (a pytest plugin module).

``prometheus`` (per test) and ``prometheus_module`` (per test module, the cheap choice when
several tests share the same data) are factories::

    url = prometheus(openmetrics({'queue_depth{queue="a"}': history([1, 2, 3])}))

Each call writes the OpenMetrics text, backfills it with ``promtool tsdb create-blocks-from
openmetrics``, starts Debian's ``prometheus`` on a free loopback port over that data (with
``rules`` as a rule file evaluated every second) and returns its base URL once ``/-/ready``
answers. Every process started is terminated and waited for at teardown.

A query evaluated at "now" only sees a series with a sample in the last 5 minutes, so
:func:`history` ends its samples 30 seconds before now by default.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
INSTALL_HINT = ("install Debian's package as root (`apt-get install -y prometheus`, which brings "
                "promtool) or run scripts/ensure-services")

Point = tuple[float, float]
Start = Callable[..., str]


# ---------------------------------------------------------------- OpenMetrics text
def history(values: Sequence[float] | Callable[[float], float], *, step: float = 15.0,
            end: float | None = None, span: float | None = None) -> list[Point]:
    """Samples ``step`` seconds apart, the last at ``end`` (default: 30 s before now).

    ``values`` is either the list of values (oldest first) or a function of the timestamp,
    sampled over ``span`` seconds ending at ``end``.
    """
    end = time.time() - 30.0 if end is None else end
    if callable(values):
        if span is None:
            raise ValueError("history(function) needs span= (seconds of history)")
        count = int(span // step) + 1
        stamps = [end - (count - 1 - i) * step for i in range(count)]
        return [(stamp, float(values(stamp))) for stamp in stamps]
    count = len(values)
    return [(end - (count - 1 - i) * step, float(v)) for i, v in enumerate(values)]


def constant(value: float, *, minutes: float = 30.0, step: float = 15.0,
             end: float | None = None) -> list[Point]:
    """``value`` every ``step`` seconds for ``minutes`` up to ``end`` (default: now - 30 s)."""
    return history(lambda _: value, step=step, end=end, span=minutes * 60.0)


def openmetrics(series: Mapping[str, Iterable[Point]],
                types: Mapping[str, str] | None = None) -> str:
    """OpenMetrics text of ``series`` (``'name{label="x"}' -> [(timestamp, value), ...]``).

    A name ending in ``_total`` is a counter (its family is the name without ``_total``),
    anything else a gauge; ``types`` maps a family name to another type. Samples are grouped
    by family with one ``# TYPE`` line each, sorted by time, and the text ends with ``# EOF``.
    """
    types = dict(types or {})
    families: dict[str, list[str]] = {}
    for selector, points in series.items():
        name = selector.split("{", 1)[0].strip()
        if not name:
            raise ValueError(f"{selector!r} has no metric name")
        family = name[: -len("_total")] if name.endswith("_total") else name
        types.setdefault(family, "counter" if name.endswith("_total") else "gauge")
        lines = families.setdefault(family, [])
        for stamp, value in sorted(points):
            lines.append(f"{selector} {_number(value)} {stamp:.3f}")
    out: list[str] = []
    for family, lines in families.items():
        out.append(f"# TYPE {family} {types[family]}")
        out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


# ---------------------------------------------------------------- the server
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _binaries() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    missing = [name for name, path in (("prometheus", prometheus), ("promtool", promtool))
               if path is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}", pytrace=False)
    assert prometheus is not None and promtool is not None
    return prometheus, promtool


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-2000:]
        pytest.fail(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{output}",
                    pytrace=False)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class PrometheusFactory:
    """Starts Prometheus servers under ``base`` and stops them all in :meth:`close`."""

    def __init__(self, base: Path):
        self.base = base
        self.processes: list[subprocess.Popen] = []

    def __call__(self, openmetrics_text: str, rules: str | None = None,
                 external_labels: dict[str, str] | None = None,
                 scrape_configs: list[dict] | None = None) -> str:
        """Backfill ``openmetrics_text``, start Prometheus over it, return its base URL.

        ``scrape_configs`` (Prometheus's own keys) adds real scrapes to the history.
        """
        prometheus, promtool = _binaries()
        home = self.base / f"prometheus-{len(self.processes)}"
        data = home / "data"
        data.mkdir(parents=True)
        text = openmetrics_text.rstrip()
        if not text.endswith("# EOF"):
            raise ValueError("OpenMetrics text must end with '# EOF' (openmetrics() adds it)")
        source = home / "series.om"
        source.write_text(text + "\n")
        _run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
             "backfilling with promtool")
        config = home / "prometheus.yml"
        labels = "".join(f"    {key}: {json.dumps(value)}\n"
                         for key, value in (external_labels or {}).items())
        head = "global:\n  scrape_interval: 1m\n" + (
            f"  external_labels:\n{labels}" if labels else "")
        scrapes = f"scrape_configs: {json.dumps(scrape_configs)}\n" if scrape_configs else ""
        if rules is None:
            config.write_text(head + scrapes)
        else:
            (home / "rules.yml").write_text(rules)
            _run([promtool, "check", "rules", str(home / "rules.yml")], "checking the rules")
            config.write_text(head + "  evaluation_interval: 1s\nrule_files: [rules.yml]\n"
                              + scrapes)
        for _ in range(3):  # another process may take the free port before Prometheus binds it
            url = self._start(prometheus, home, data, config)
            if url:
                return url
        pytest.fail(f"Prometheus did not become ready; its log is {home / 'prometheus.log'}",
                    pytrace=False)

    def _start(self, prometheus: str, home: Path, data: Path, config: Path) -> str | None:
        port = free_port()
        url = f"http://{HOST}:{port}"
        log = home / "prometheus.log"
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 f"--web.listen-address={HOST}:{port}", "--log.level=warn",
                 "--storage.tsdb.retention.time=3650d", "--query.timeout=30s"],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=home)
        self.processes.append(process)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if _ready(url):
                return url
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                if "address already in use" in tail:
                    return None
                pytest.fail(f"Prometheus exited with status {process.returncode}:\n{tail}",
                            pytrace=False)
            time.sleep(0.05)
        _stop(process)
        pytest.fail(f"Prometheus was not ready at {url}/-/ready within {READY_TIMEOUT:g} s; "
                    f"log:\n{log.read_text(errors='replace')[-2000:]}", pytrace=False)

    def close(self) -> None:
        """Terminate and wait for every started process."""
        for process in self.processes:
            with contextlib.suppress(Exception):
                _stop(process)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Start]:
    """``start(openmetrics, rules=None) -> base URL``: a Prometheus for one test."""
    factory = PrometheusFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def prometheus_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Start]:
    """``start(openmetrics, rules=None) -> base URL``: a Prometheus shared by a test module."""
    factory = PrometheusFactory(tmp_path_factory.mktemp("prometheus"))
    try:
        yield factory
    finally:
        factory.close()


def query(url: str, promql: str, at: float | None = None) -> list[dict]:
    """The result of an instant query (``at``: evaluation time, default now)."""
    params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
    request = f"{url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise AssertionError(f"query {promql!r} failed: {body}")
    return body["data"]["result"]


def wait_for(url: str, promql: str, timeout: float = 10.0) -> list[dict]:
    """Poll an instant query until it returns a non-empty result (e.g. a rule's first run)."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(url, promql)
        if result or time.monotonic() > deadline:
            if not result:
                pytest.fail(f"{promql!r} stayed empty for {timeout:g} s", pytrace=False)
            return result
        time.sleep(0.2)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test that starts a Prometheus the ``prometheus`` marker."""
    for item in items:
        if {"prometheus", "prometheus_module"} & set(getattr(item, "fixturenames", ())) and \
                item.get_closest_marker("prometheus") is None:
            item.add_marker(pytest.mark.prometheus)
