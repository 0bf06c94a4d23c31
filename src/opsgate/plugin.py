"""opsgate's pytest plugin entry point (``pytest11``): the options, and nothing else.

pytest imports every installed plugin at start-up, also for other projects sharing the
environment, so this module imports only pytest. When ``--env`` is given, ``pytest_configure``
imports ``opsgate.gate_plugin`` (the run, probes, reports, verdict) and registers it.
"""

from __future__ import annotations

import gc

import pytest

#: Fixtures that exist only in a gate run: a test asking for one without ``--env`` is refused.
GATE_FIXTURES = frozenset({"opsgate_check", "opsgate_outcome", "opsgate", "opsgate_runner"})
#: The redacting wrappers of sys.stdout and sys.stderr of a gate run (opsgate.streams).
PROCESS_STREAMS = pytest.StashKey[list]()


# ---------------------------------------------------------------- options and start-up
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opsgate", "opsgate: runbook checks against live environments")
    group.addoption("--env", action="append", default=[], metavar="NAME_OR_PATH",
                    help="environment to check: a name under fixtures/environments/ or a YAML "
                         "path; repeat to check several (ids carry the environment name)")
    group.addoption("--checklist", default=None, metavar="NAME",
                    help="run only the checks of this checklist (default: every check)")
    group.addoption("--incident", default=None, metavar="ID",
                    help="incident id recorded in the report and evidence")
    group.addoption("--operator", default=None, metavar="NAME",
                    help="who runs the gate (default: $OPSGATE_OPERATOR or the login name)")
    group.addoption("--report-dir", default="reports", metavar="DIR",
                    help="where each run writes its own folder of report.html, evidence.json "
                         "and junit.xml (default: reports/)")
    group.addoption("--allow-mutations", action="store_true", default=False,
                    help="let checks marked 'mutating: true' change state (never against a "
                         "production environment unless the check is 'production_safe')")
    group.addoption("--run-deadline", default=None, metavar="DURATION", type=_duration_option,
                    help="stop measuring after this long (e.g. 20m): checks not finished by "
                         "then are not run, and the gate is BLOCKED (default: none)")


def _duration_option(value: str) -> float:
    from opsgate.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise pytest.UsageError(f"--run-deadline: {exc}") from None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser,
                                  args: list[str]):
    """With ``--env``, wrap sys.stdout and sys.stderr for redaction before pytest's capture
    starts (this wrapper runs outside capture's), so that capture saves and restores them.
    The streams are put back by a clean-up that runs after capture's own."""
    if early_config.known_args_namespace.env:
        from opsgate.streams import wrap_process_streams

        wrappers, restore = wrap_process_streams()
        early_config.add_cleanup(restore)
        early_config.stash[PROCESS_STREAMS] = wrappers
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """With ``--env``, load the gate (first, so it sets the report paths pytest-html and
    JUnit read in their own ``pytest_configure``)."""
    if not config.getoption("env"):
        return
    # Loading the gate makes many long-lived objects (modules, models, the checks) and no
    # garbage: the cyclic collector would only walk them again and again (a fifth of the
    # start-up). It is paused while they are made, then they are frozen out of its reach.
    # They are given back by a clean-up registered here, before the other plugins' (this
    # hook runs first), so it runs last: after pytest's own full collections at the end
    # of the run (unraisableexception), which would otherwise walk them all once more.
    config.add_cleanup(gc.unfreeze)
    gc.disable()
    try:
        from opsgate import gate_plugin

        config.pluginmanager.register(gate_plugin, "opsgate-gate")
    finally:
        gc.enable()
        gc.freeze()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.config.getoption("env") or not GATE_FIXTURES & set(metafunc.fixturenames):
        return
    raise pytest.UsageError(
        "opsgate: no environment given; run `pytest checks --env NAME` "
        "(a name under fixtures/environments/ or a path to a YAML file)")
