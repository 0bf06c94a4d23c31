"""What every benchmark row shares: the work folder, measured subprocesses, opsgate runs, results.

A measured subprocess is waited for with ``os.wait4`` so its wall time and its own peak memory
(``ru_maxrss`` of that one child) are known exactly. Children run with bytecode caching on
(``PYTHONPYCACHEPREFIX`` in the work folder, so nothing is written into the repository) and
without proxy variables, so every request stays on loopback. An opsgate run is
``python -m pytest checks --env FILE`` from the repository root (its pyproject options apply),
with its own ``--report-dir`` so its run folder and evidence.json are found without guessing.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
HOST = "127.0.0.1"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                   "ALL_PROXY", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE")


# ---------------------------------------------------------------- the work folder
class Work:
    """A scratch folder for one benchmark run: environment files, reports, bytecode cache."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="opsgate-bench-"))
        self._runs = 0

    def path(self, name: str) -> Path:
        return self.root / name

    def fresh_dir(self, label: str) -> Path:
        """A new, empty folder (one per opsgate run, so its run folder is the only one)."""
        self._runs += 1
        directory = self.root / f"{label}-{self._runs}"
        directory.mkdir(parents=True)
        return directory

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a measured child: bytecode cached here, no proxies."""
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
        # bytecode is written (and reused), as on a user's machine, even where the shell
        # sets PYTHONDONTWRITEBYTECODE (these machines do): otherwise every run recompiles
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        env["NO_PROXY"] = env["no_proxy"] = f"{HOST},localhost"
        env["OPSGATE_OPERATOR"] = "bench"
        env.update(extra)
        return env

    def write_yaml(self, name: str, document: dict[str, Any]) -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- measured subprocesses
@dataclass
class Proc:
    """One finished subprocess: wall and CPU seconds, exit status, peak RSS, its output."""

    command: list[str]
    seconds: float
    cpu_seconds: float
    returncode: int
    max_rss_mb: float
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        text = (self.stdout + "\n" + self.stderr).strip().splitlines()
        return "\n".join(text[-lines:])


def measure(command: Sequence[str], *, cwd: Path, env: dict[str, str],
            timeout: float = 900.0) -> Proc:
    """Run ``command`` and wait for it with ``wait4``: wall time, and that child's CPU time
    (user + system, its waited-for descendants included) and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        begin = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=err)
        killer = threading.Timer(timeout, process.kill)
        killer.daemon = True
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - begin
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(list(command), seconds, usage.ru_utime + usage.ru_stime, process.returncode,
                    usage.ru_maxrss / 1024,
                    out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def repeat(times: int, run: Callable[[], Proc]) -> list[Proc]:
    return [run() for _ in range(times)]


# ---------------------------------------------------------------- opsgate runs
@dataclass
class GateRun:
    """An opsgate run: the process and the evidence document of its run folder."""

    proc: Proc
    document: dict[str, Any] | None
    folder: Path | None

    @property
    def counts(self) -> dict[str, int]:
        return (self.document or {}).get("counts", {})

    def check(self, ident: str) -> dict[str, Any]:
        for record in (self.document or {}).get("checks", []):
            if record["id"] == ident:
                return record
        raise LookupError(f"{ident} not in the evidence; output:\n{self.proc.tail()}")


def opsgate_command(env_file: Path, report_dir: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "pytest", "checks", "--env", str(env_file), "-q",
            "-p", "no:cacheprovider", "--report-dir", str(report_dir), *extra]


def run_gate(work: Work, env_file: Path, *extra: str, label: str = "gate",
             child_env: dict[str, str] | None = None) -> GateRun:
    """Run the catalog against ``env_file`` and read its evidence.json."""
    reports = work.fresh_dir(label)
    proc = measure(opsgate_command(env_file, reports, *extra), cwd=REPO,
                   env=child_env or work.env())
    folders = [p for p in reports.iterdir() if p.is_dir()]
    folder = folders[0] if len(folders) == 1 else None
    evidence = folder / "evidence.json" if folder else None
    document = None
    if evidence is not None and evidence.is_file():
        document = json.loads(evidence.read_text(encoding="utf-8"))
    return GateRun(proc, document, folder)


def collect_only(work: Work, env_file: Path) -> Proc:
    """``pytest checks --env FILE --collect-only -q``: opsgate's start-up for that file."""
    reports = work.fresh_dir("collect")
    return measure(opsgate_command(env_file, reports, "--collect-only"), cwd=REPO,
                   env=work.env())


WARM_MODULES = ("opsgate.plugin", "opsgate.gate_plugin", "opsgate.session", "opsgate.report",
                "opsgate.probes.http", "opsgate.probes.sql", "opsgate.probes.database",
                "opsgate.probes.promql", "opsgate.kinds", "opsgate.config.sqlguard",
                "opsgate.config.promqlcheck",
                "httpx", "psycopg", "sqlalchemy.dialects.postgresql.psycopg",
                "sqlalchemy.dialects.sqlite", "pytest_html.plugin", "xdist.plugin", "execnet")


def warm_up(work: Work) -> None:
    """Fill the bytecode cache once, so no measured run pays for compiling modules: import
    what the runs import, and collect a one-test file with every plugin autoloaded."""
    imports = ("import importlib\n"
               f"for name in {WARM_MODULES!r}:\n    importlib.import_module(name)\n")
    measure([PYTHON, "-c", imports], cwd=REPO, env=work.env())
    folder = work.path("warm")
    folder.mkdir(exist_ok=True)
    (folder / "test_warm.py").write_text("def test_warm():\n    pass\n")
    measure([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_warm.py"],
            cwd=folder, env=work.env())


def seconds_between(started: str, finished: str) -> float:
    """Seconds between two evidence timestamps (``2024-01-01T00:00:00.000Z``)."""
    from datetime import datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(finished) - parse(started)).total_seconds()


# ---------------------------------------------------------------- results
@dataclass
class Result:
    """One line of the table: what was measured against what, the ratio and the target."""

    key: str
    what: str
    measured: str
    reference: str
    ratio: str
    target: str
    ok: bool | None  # None: for information, no target
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "info" if self.ok is None else ("PASS" if self.ok else "MISS")


def failed_row(key: str, what: str, error: BaseException) -> Result:
    """A row whose measurement could not be made: a MISS with the reason."""
    return Result(key, what, "not measured", "-", "-", "-", False,
                  [f"could not measure: {type(error).__name__}: {error}"])


def ratio_text(value: float) -> str:
    return f"{value:.2f}x"


def load_average() -> str:
    """The machine's load: other work on a 2-core box shows in wall times."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the table and the summary."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
