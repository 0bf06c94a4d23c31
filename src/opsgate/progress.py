"""Show what long probes are doing while a test waits for one (windows, polling flows).

The line goes to the real terminal even while pytest captures output, at most every
``EVERY`` seconds and only when something changed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

EVERY = 2.0


class WaitReporter:
    """Called by the scheduler while a test waits; prints the job's status now and then."""

    def __init__(self, config: pytest.Config):
        self._terminal = config.pluginmanager.get_plugin("terminalreporter")
        self._capture = config.pluginmanager.get_plugin("capturemanager")
        self._last_line = ""
        self._last_time = 0.0

    def __call__(self, job: Any) -> None:
        if self._terminal is None or not job.status:
            return
        line = f"opsgate: waiting for {job.case.ident}: {job.status}"
        now = time.monotonic()
        if line == self._last_line or now - self._last_time < EVERY:
            return
        self._last_line, self._last_time = line, now
        if self._capture is not None:
            with self._capture.global_and_fixture_disabled():
                self._write(line)
        else:
            self._write(line)

    def _write(self, line: str) -> None:
        self._terminal.write_line("")
        self._terminal.write_line(line)
