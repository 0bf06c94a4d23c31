"""The catalog runs against an environment: without ``--env`` it is a usage error."""

import pytest


def pytest_configure(config):
    if not config.getoption("env"):
        raise pytest.UsageError(
            "opsgate: no environment given; run `pytest checks --env NAME` "
            "(a name under fixtures/environments/ or a path to a YAML file)")
