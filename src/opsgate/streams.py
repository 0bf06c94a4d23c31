"""The process's ``sys.stdout`` and ``sys.stderr``, redacted: what is printed outside a test.

pytest captures what a test writes, and opsgate redacts those captures in every report. Between
tests, and before and after them, pytest suspends its capture and ``sys.stdout`` is the terminal
again, so a thread a hand-written check started (a worker, a poller) printing then would put a
secret on the terminal as it was. With ``--env``, ``opsgate.plugin`` wraps both streams before
pytest starts capturing: pytest's capture saves the wrappers and puts them back between tests,
and the terminal reporter writes through them too. The redactor is given to them once the
environment is loaded; before that nothing of a check has run.

Not covered: bytes written to a stream's binary ``buffer``, or to file descriptors 1 and 2
directly (``os.write``, a subprocess), between tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from opsgate.redaction import Redactor


class RedactingStream:
    """A text stream that redacts what is written to it, and is otherwise ``stream``."""

    def __init__(self, stream: TextIO):
        self.wrapped = stream
        self.redactor: Redactor | None = None

    def write(self, text: str) -> int:
        redactor = self.redactor
        if redactor is not None and isinstance(text, str):
            self.wrapped.write(redactor.text(text))
            return len(text)
        return self.wrapped.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def wrap_process_streams() -> tuple[list[RedactingStream], Callable[[], None]]:
    """Wrap ``sys.stdout`` and ``sys.stderr``; the wrappers, and how to put the streams back."""
    wrappers = [RedactingStream(sys.stdout), RedactingStream(sys.stderr)]
    sys.stdout, sys.stderr = wrappers

    def restore() -> None:
        if sys.stdout is wrappers[0]:
            sys.stdout = wrappers[0].wrapped
        if sys.stderr is wrappers[1]:
            sys.stderr = wrappers[1].wrapped

    return wrappers, restore


def redact_with(wrappers: Iterable[RedactingStream], redactor: Redactor) -> None:
    for wrapper in wrappers:
        wrapper.redactor = redactor
