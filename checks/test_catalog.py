"""The configured catalog: one test per check of the selected environment(s) and checklist.

Nothing here names a system: every endpoint, table, column, header and metric comes from the
environment file given with ``--env``. A check that could not measure errors in setup; a check
that measured a bad value fails here with the observed value beside the expectation.
"""

import pytest


def test_check(opsgate_outcome):
    if opsgate_outcome.status != "passed":
        pytest.fail(opsgate_outcome.message, pytrace=False)
