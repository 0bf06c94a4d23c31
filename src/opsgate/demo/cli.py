"""``opsgate-demo``: list the faults, serve the demo, or run the demo gate.

    opsgate-demo faults
    opsgate-demo serve [--port 18080] [--db URL] [--fault NAME]...
    opsgate-demo gate  [--fault NAME]... [--db URL] [-- extra pytest args]

``--fault list`` prints the faults and exits 0 (``make demo FAULT=list``). An unknown fault
exits 2 naming the known ones, as does anything that keeps the demo from starting (a foreign
database, Prometheus failing). ``gate`` exits with pytest's status: 0 PASS, 1 BLOCKED.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from opsgate.demo.context import SECRET_HEADER, SECRET_VARIABLE
from opsgate.demo.database import DEFAULT_URL, DemoDatabaseError, backend
from opsgate.demo.envfile import EnvFileError
from opsgate.demo.faults import UnknownFault, describe, validate
from opsgate.demo.gate import GateSetupError, run_gate
from opsgate.demo.prometheus import PrometheusError
from opsgate.demo.server import DEFAULT_PORT, DemoServer

SECRET_FILE = Path(".opsgate-demo") / "ops-secret"
USAGE_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, extra = args[:cut], args[cut + 1:]
    options = _parser().parse_args(args)
    if options.command != "gate" and extra:
        return _fail(f"extra arguments after -- are for `gate` only: {' '.join(extra)}",
                     USAGE_ERROR)
    if options.command == "faults" or "list" in (options.fault or []):
        print(describe())
        return 0
    try:
        validate(options.fault, backend(options.db or DEFAULT_URL))
        if options.command == "serve":
            return _serve(options)
        return _gate(options, extra)
    except (UnknownFault, DemoDatabaseError, GateSetupError, PrometheusError,
            EnvFileError) as exc:
        return _fail(str(exc), USAGE_ERROR)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsgate-demo", description="opsgate's embedded demo target and its gate")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("faults", help="list the faults the demo can inject")
    for name, text in (("serve", "serve the demo until Ctrl-C"),
                       ("gate", "start the demo, run the demo gate, stop; exit 0 PASS, "
                                "1 BLOCKED (pytest arguments after --)")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--fault", action="append", default=[], metavar="NAME",
                             help="inject a fault (repeatable; 'list' lists them)")
        command.add_argument("--db", default=None, metavar="URL",
                             help=f"SQLAlchemy URL of the demo's database (default {DEFAULT_URL} "
                                  "for serve, one per run for gate); postgresql+psycopg://... "
                                  "for PostgreSQL")
        if name == "serve":
            command.add_argument("--port", type=int, default=DEFAULT_PORT,
                                 help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"opsgate-demo: {message}", file=sys.stderr)
    return code


def _gate(options: argparse.Namespace, extra: list[str]) -> int:
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_gate(faults=options.fault, db_url=options.db, pytest_args=extra).exit_code
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve(options: argparse.Namespace) -> int:
    secret, where = _secret()
    server = DemoServer(port=options.port, db_url=options.db or DEFAULT_URL,
                        faults=options.fault, secret=secret, quiet=False)
    try:
        server.start()
    except OSError as exc:
        return _fail(f"cannot listen on 127.0.0.1:{options.port} ({exc.strerror}); "
                     "give another --port", 1)
    print(f"opsgate-demo: serving {server.url} (database {server.backend}, faults: "
          f"{', '.join(sorted(server.faults)) or 'none'})")
    print(f"opsgate-demo: internal endpoints need the header {SECRET_HEADER}: {where}")
    print("opsgate-demo: press Ctrl-C to stop", flush=True)
    stopped = threading.Event()
    previous = {number: signal.signal(number, lambda *_: stopped.set())
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        server.stop()
    print("opsgate-demo: stopped")
    return 0


def _secret() -> tuple[str, str]:
    """The ops secret (from ``$DEMO_OPS_SECRET`` or a new one kept in a 0600 file) and a
    sentence saying where it is: the secret itself is never printed."""
    given = os.environ.get(SECRET_VARIABLE)
    if given:
        return given, f"its value is ${SECRET_VARIABLE}"
    secret = secrets.token_urlsafe(24)
    SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret)
    return secret, (f"${SECRET_VARIABLE} is not set, so a new secret was written to "
                    f"{SECRET_FILE}; export {SECRET_VARIABLE}=$(cat {SECRET_FILE})")


if __name__ == "__main__":
    sys.exit(main())
