"""opsgate's benchmark (``make bench``): is it fast by construction?

Each row is measured side by side in one run and printed as a ratio against its reference,
with the target and PASS or MISS:

1. N HTTP checks against a loopback service answering after 100 ms (concurrency 16): opsgate
   vs its bound (N x 100 ms / 16 + start-up), vs a plain pytest file run serially, and vs
   that file under ``pytest -n 8``.
2. Ten ``window`` checks of 20 s sampling a JSON field every 2 s: wall time vs one window.
3. ``invariant`` ``sum_matches`` over 10 million PostgreSQL ledger rows: opsgate's check time
   vs ``psql -c`` running the same SQL; the pytest process's peak RSS.
4. Start-up: ``--collect-only`` of 200 checks vs a bare ``pytest --collect-only`` of a one-test
   file in the same venv (every installed plugin loads); for information, vs a bare run given
   opsgate's plugin opt-outs (4s) and the floor of importing the validation libraries (4c), with
   an import-time breakdown.
5. A PromQL ``window`` check over 15 minutes: range queries sent (one expected).
6. Reporting per check over 2,000 checks, and the size of report.html.

It installs nothing. It starts what it needs on loopback (an HTTP service, a recording proxy, a
Prometheus over backfilled data) and uses the PostgreSQL on 127.0.0.1:5432, where it keeps one
generated ledger database between runs (``--drop`` removes it). Everything else it starts or
writes is removed at the end. ``--quick`` is a smaller version (about a minute) for smoke tests.
The exit status is 0 whether or not targets are met: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from bench_common import Result, Work, failed_row, load_average, log, warm_up
from bench_services import drop_ledgers, ledger_name

PACKAGES = ("opsgate", "pytest", "pytest-html", "pytest-xdist", "httpx", "pydantic",
            "SQLAlchemy", "psycopg", "pglast", "promql-parser", "hypothesis")


@dataclass(frozen=True)
class Sizes:
    """How big each row is: the full benchmark or ``--quick``."""

    http_checks: int
    windows: int
    window: float
    interval: float
    ledger_rows: int
    accounts: int
    startup_checks: int
    report_checks: int
    repeats: int
    startup_repeats: int
    ledger_repeats: int


FULL = Sizes(http_checks=200, windows=10, window=20.0, interval=2.0, ledger_rows=10_000_000,
             accounts=100_000, startup_checks=200, report_checks=2000, repeats=3,
             startup_repeats=5, ledger_repeats=5)
QUICK = Sizes(http_checks=48, windows=10, window=5.0, interval=1.0, ledger_rows=1_000_000,
              accounts=10_000, startup_checks=200, report_checks=300, repeats=1,
              startup_repeats=2, ledger_repeats=1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smaller version of every row (about a minute)")
    parser.add_argument("--only", default="1,2,3,4,5,6", metavar="ROWS",
                        help="comma-separated rows to run (default: all)")
    parser.add_argument("--drop", action="store_true",
                        help="drop the cached ledger database(s) and exit")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- rows
def rows_to_run(sizes: Sizes, work: Work, only: set[str]) -> list[tuple[str, str, Callable]]:
    """(row, title, function) for each selected row; imports stay lazy."""
    from rows_data import row_ledger, row_promql
    from rows_http import http_env, row_http, row_window
    from rows_report import row_report
    from rows_startup import row_startup

    def startup() -> list[Result]:  # the database is named, never contacted, at collection
        url = f"postgresql+psycopg://bench@127.0.0.1:5432/{ledger_name(sizes.ledger_rows)}"
        http_file = http_env(work, "http://127.0.0.1:9", sizes.startup_checks)
        return row_startup(work, sizes.startup_checks, sizes.startup_repeats, url, http_file)

    table = [
        ("1", "HTTP fan-out", lambda: row_http(work, sizes.http_checks, sizes.repeats)),
        ("2", "windows", lambda: row_window(work, sizes.windows, sizes.window, sizes.interval)),
        ("3", "ledger invariant", lambda: row_ledger(work, sizes.ledger_rows, sizes.accounts,
                                                     sizes.ledger_repeats)),
        ("4", "start-up", startup),
        ("5", "PromQL window", lambda: row_promql(work)),
        ("6", "reporting", lambda: row_report(work, sizes.report_checks, sizes.repeats)),
    ]
    return [row for row in table if row[0] in only]


def measure_rows(rows: list[tuple[str, str, Callable]]) -> list[Result]:
    results: list[Result] = []
    for key, title, run in rows:
        begin = time.monotonic()
        try:
            results.extend(run())
        except Exception as exc:  # a row that cannot be measured is reported, not fatal
            results.append(failed_row(key, title, exc))
        log(f"row {key} ({title}) took {time.monotonic() - begin:.0f} s")
    return results


# ---------------------------------------------------------------- output
def header(sizes: Sizes) -> list[str]:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    mode = "quick" if sizes is QUICK else "full"
    return [f"opsgate benchmark ({mode}) on {platform.node()}: {os.cpu_count()} cores, "
            f"Python {platform.python_version()} ({sys.executable})",
            "packages: " + ", ".join(versions), f"machine: {load_average()} at the start"]


def table(results: list[Result]) -> list[str]:
    columns = ("row", "what", "measured", "reference", "ratio", "target", "result")
    cells = [columns] + [(r.key, r.what, r.measured, r.reference, r.ratio, r.target, r.verdict)
                         for r in results]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def notes(results: list[Result]) -> list[str]:
    lines = []
    for result in results:
        lines += [f"[{result.key}] {note}" for note in result.notes]
    return lines


def summary(results: list[Result], seconds: float, quick: bool) -> list[str]:
    judged = [r for r in results if r.ok is not None]
    missed = [r for r in judged if not r.ok]
    verdict = "all targets met" if not missed else \
        f"MISSED: {', '.join(f'{r.key} ({r.what})' for r in missed)}"
    lines = [f"summary: {len(judged) - len(missed)} of {len(judged)} targets met; {verdict}; "
             f"benchmark took {seconds:.0f} s; {load_average()} at the end"]
    if quick:
        lines.append("--quick: smaller sizes for a smoke test; the targets are set for the full "
                     "sizes (start-up weighs more in small runs), so run without --quick to judge")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drop:
        dropped = drop_ledgers()
        print(f"dropped: {', '.join(dropped) or 'no cached ledger database'}")
        return 0
    sizes = QUICK if args.quick else FULL
    only = {part.strip() for part in args.only.split(",") if part.strip()}
    begin = time.monotonic()
    work = Work()
    try:
        print("\n".join(header(sizes)), flush=True)
        log("warming the bytecode cache")
        warm_up(work)
        results = measure_rows(rows_to_run(sizes, work, only))
    finally:
        work.remove()
    print()
    print("\n".join(table(results)))
    print()
    print("\n".join(notes(results)))
    print()
    print("\n".join(summary(results, time.monotonic() - begin, args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
