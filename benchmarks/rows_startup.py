"""Row 4: start-up. ``pytest checks --env FILE --collect-only -q`` for a file of 200 checks
against a bare ``pytest --collect-only -q`` of a one-test file in the same virtual environment,
as issue 5 words it: pytest with no options, so every installed plugin loads (hypothesis, xdist,
anyio, and opsgate's options-only entry point), as it would for any project in this venv.

The 200 checks mix kinds (http, sql and invariant on PostgreSQL, promql, window) so every
validator runs: the SQL guard (pglast), the PromQL parser, the database URL check. Nothing is
contacted during collection. Two stricter comparisons are shown for information: row 4s gives the
bare run the same plugin opt-outs opsgate's pyproject gives (``-p no:hypothesispytest -p no:xdist
-p no:anyio``, and ``-p no:opsgate``), so it holds only pytest's own start-up; row 4c adds to that
the bare import of the libraries validating a configuration needs (the floor). ``python -X
importtime`` of the opsgate command tells which packages the start-up goes to (self time summed
per top-level package). The commands run in interleaved rounds; CPU time is shown beside wall
time because it is less disturbed by other work on the machine.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench_common import (
    PYTHON,
    REPO,
    Proc,
    Result,
    Work,
    collect_only,
    log,
    measure,
    median,
    opsgate_command,
    ratio_text,
)

OPT_OUTS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist",
            "-p", "no:anyio")
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def mixed_env(work: Work, checks: int, database_url: str) -> Path:
    """``checks`` checks of five kinds against targets that are never contacted."""
    makers = (_http, _sql, _promql, _window, _invariant)
    return work.write_yaml(f"mixed-{checks}.yaml", {
        "name": "bench-startup",
        "targets": {"http": {"api": {"base_url": "http://127.0.0.1:9"}},
                    "databases": {"main": {"url": database_url}},
                    "prometheus": {"url": "http://127.0.0.1:9"}},
        "checks": [makers[n % len(makers)](n) for n in range(checks)],
    })


def _http(n: int) -> dict:
    return {"id": f"C{n:04d}", "title": "health", "kind": "http",
            "request": {"path": f"/health/{n}"}, "expect": {"status": "== 200",
                                                             "json": {"db.ok": "== true"}}}


def _sql(n: int) -> dict:
    return {"id": f"C{n:04d}", "title": "no failed jobs", "kind": "sql",
            "scalar": f"select count(*) from jobs where status = 'failed' and id > {n}",
            "expect": "== 0"}


def _promql(n: int) -> dict:
    return {"id": f"C{n:04d}", "title": "p95", "kind": "promql",
            "query": "histogram_quantile(0.95, sum by (le) "
                     f"(rate(http_request_duration_seconds_bucket{{route=\"/r{n}\"}}[5m])))",
            "expect": "< 0.3"}


def _window(n: int) -> dict:
    return {"id": f"C{n:04d}", "title": "dlq stable", "kind": "window",
            "sample": {"http": {"request": {"path": "/dlq"}, "value": "count"}},
            "window": "15m", "interval": "1m", "expect": ["non_increasing", "last <= 5"]}


def _invariant(n: int) -> dict:
    return {"id": f"C{n:04d}", "title": "balances", "kind": "invariant", "rule": "sum_matches",
            "parent": {"table": "accounts", "key": "id", "value": "balance"},
            "children": {"table": f"ledger_{n}", "key": "account_id", "value": "amount"}}


def bare_file(work: Work) -> Path:
    folder = work.path("bare")
    folder.mkdir(exist_ok=True)
    path = folder / "test_one.py"
    path.write_text("def test_one():\n    assert True\n", encoding="utf-8")
    return path


def floor_file(work: Work) -> Path:
    """A one-test file whose conftest imports what validating a configuration needs
    (pydantic, PyYAML, pglast, promql-parser, jmespath) and does nothing else: the least any
    validating start-up can cost on this stack. ``import pydantic`` alone loads almost nothing
    (its names load on first use), so the conftest imports ``BaseModel``, as any model does."""
    folder = work.path("floor")
    folder.mkdir(exist_ok=True)
    (folder / "conftest.py").write_text(
        "import jmespath, pglast, promql_parser, yaml  # noqa: F401\n"
        "from pydantic import BaseModel  # noqa: F401\n",
        encoding="utf-8")
    path = folder / "test_one.py"
    path.write_text("def test_one():\n    assert True\n", encoding="utf-8")
    return path


def bare(work: Work, path: Path, *extra: str) -> Proc:
    command = [PYTHON, "-m", "pytest", path.name, "--collect-only", "-q", *extra]
    return measure(command, cwd=path.parent, env=work.env())


def import_breakdown(work: Work, env_file: Path) -> tuple[float, Counter[str]]:
    """Total import seconds and self seconds per top-level package of the opsgate command."""
    command = opsgate_command(env_file, work.fresh_dir("importtime"), "--collect-only")
    proc = measure([PYTHON, "-X", "importtime", *command[1:]], cwd=REPO, env=work.env())
    per_package: Counter[str] = Counter()
    for line in proc.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            per_package[match.group(4).split(".")[0]] += int(match.group(1)) / 1e6
    return sum(per_package.values()), per_package


def interleaved(runs: dict[str, Callable[[], Proc]], repeats: int) -> dict[str, list[Proc]]:
    """One warm-up of each, then ``repeats`` rounds running each once, so that load from
    elsewhere on the machine falls on every command alike."""
    for run in runs.values():
        run()
    samples: dict[str, list[Proc]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return samples


def row_startup(work: Work, checks: int, repeats: int, database_url: str,
                http_file: Path) -> list[Result]:
    env_file = mixed_env(work, checks, database_url)
    one = bare_file(work)
    floor = floor_file(work)
    log(f"row 4: start-up, {repeats} interleaved rounds after a warm-up of each command")
    samples = interleaved({
        "opsgate": lambda: collect_only(work, env_file),
        "http": lambda: collect_only(work, http_file),
        "bare": lambda: bare(work, one, *OPT_OUTS, "-p", "no:opsgate"),
        "floor": lambda: bare(work, floor, *OPT_OUTS, "-p", "no:opsgate"),
        "plugin": lambda: bare(work, one, *OPT_OUTS),
        "autoload": lambda: bare(work, one),
    }, repeats)
    wall = {name: median([p.seconds for p in procs]) for name, procs in samples.items()}
    cpu = {name: median([p.cpu_seconds for p in procs]) for name, procs in samples.items()}
    total, packages = import_breakdown(work, env_file)
    ratio = wall["opsgate"] / wall["autoload"]
    strict = wall["opsgate"] / wall["bare"]
    notes = [f"CPU time (less sensitive to other load): opsgate {cpu['opsgate']:.2f} s, bare "
             f"{cpu['autoload']:.2f} s, ratio {cpu['opsgate'] / cpu['autoload']:.2f}x",
             f"bare one-test collect: {wall['autoload']:.2f} s as the issue words it (every "
             f"installed plugin autoloaded: hypothesis, xdist, anyio, opsgate's options); "
             f"{wall['plugin']:.2f} s with opsgate's opt-outs but its options plugin autoloaded "
             f"(what other projects' pytest runs in this venv pay); {wall['bare']:.2f} s with "
             "the opt-outs and -p no:opsgate (row 4s)",
             f"imports of the opsgate command: {total:.2f} s; self time by top-level package: "
             + ", ".join(f"{name} {seconds * 1000:.0f} ms"
                         for name, seconds in packages.most_common(14))]
    return [Result("4", f"start-up: --collect-only of {checks} mixed checks vs bare pytest",
                   f"{wall['opsgate']:.2f} s", f"bare {wall['autoload']:.2f} s",
                   ratio_text(ratio), "<= 1.5x", ratio <= 1.5, notes),
            Result("4s", "start-up vs a bare pytest given opsgate's plugin opt-outs",
                   f"{wall['opsgate']:.2f} s", f"bare {wall['bare']:.2f} s",
                   ratio_text(strict), "(info)", None,
                   [f"against pytest's own start-up alone (the opt-outs, -p no:opsgate) "
                    f"opsgate takes {strict:.2f}x (CPU {cpu['opsgate'] / cpu['bare']:.2f}x); "
                    f"1.5x is {'met' if strict <= 1.5 else 'not met'} on this stricter "
                    "baseline, row 4c says why"]),
            Result("4b", "start-up: --collect-only of row 1's HTTP-only file",
                   f"{wall['http']:.2f} s", f"bare {wall['autoload']:.2f} s",
                   ratio_text(wall["http"] / wall["autoload"]), "(info)", None),
            Result("4c", "start-up floor: row 4s's bare + importing the validation libraries",
                   f"{wall['floor']:.2f} s", f"bare {wall['bare']:.2f} s",
                   ratio_text(wall["floor"] / wall["bare"]), "(info)", None,
                   [f"floor: a one-test collect with the opt-outs whose conftest only imports "
                    f"pydantic, PyYAML, pglast, promql-parser and jmespath takes "
                    f"{wall['floor']:.2f} s ({wall['floor'] / wall['bare']:.2f}x row 4s's bare, "
                    f"CPU {cpu['floor'] / cpu['bare']:.2f}x); opsgate's own work for {checks} "
                    f"checks is the rest: {wall['opsgate'] - wall['floor']:.2f} s"])]
