"""Run every selected check's probe concurrently, then hand each test its observation.

The run's cost grows with its slowest probe, not with the number of checks: probes start
together (bounded per target by the runner's slots) and each test item only waits for its
own. Waiting is where deadlines are enforced: a probe that has not finished ``GRACE`` seconds
after its own deadline (a call blocked in C, a black-holed connection) ends as an error, and
a run deadline turns whatever has not finished into not run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsgate.deadline import Deadline
from opsgate.errors import ProbeTimeout
from opsgate.observation import Observation, utcnow
from opsgate.runner import CheckCase, ProbeRunner

GRACE = 2.0
POLL = 0.25


class DaemonPool:
    """A thread pool whose threads never keep the process alive.

    ``concurrent.futures.ThreadPoolExecutor`` joins its threads at exit, so one probe blocked
    in C (a black-holed socket) would hang an interrupted run; these threads are daemons.
    """

    def __init__(self, workers: int, name: str):
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
                         for n in range(workers)]
        self._started = False
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if not self._started:
                for thread in self._threads:
                    thread.start()
                self._started = True
        self._queue.put((future, function, args))
        return future

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            future, function, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # handed to the waiting test, never lost
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Let idle threads end; threads still blocked are daemons and do not matter."""
        for _ in self._threads:
            self._queue.put(None)


class RunDeadlinePassed(Exception):
    """The run's own deadline passed before this check finished: it did not run."""


@dataclass
class Job:
    """One probe in flight."""

    case: CheckCase
    future: Future[Observation] = field(default_factory=Future)
    deadline: Deadline | None = None
    started_at: datetime | None = None
    status: str = ""

    def started(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.started_at = utcnow()

    def progress(self, status: str) -> None:
        self.status = status


class Scheduler:
    """Submits probes to a thread pool up front and waits for each with its deadline."""

    def __init__(self, runner: ProbeRunner, *, workers: int = 32,
                 run_deadline: Deadline | None = None):
        self.runner = runner
        self.run_deadline = run_deadline
        self._pool = DaemonPool(workers, "opsgate-probe")
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, case: CheckCase) -> Job:
        """Start the probe of ``case`` (once per ``key``) and return its job."""
        with self._lock:
            if key in self._jobs:
                return self._jobs[key]
            job = Job(case)
            self._jobs[key] = job
        job.future = self._pool.submit(self.runner.observe, case, job.started, job.progress)
        return job

    def result(self, key: str, case: CheckCase,
               on_wait: Callable[[Job], None] | None = None) -> Observation:
        """The observation of ``case``; ProbeTimeout once its deadline plus GRACE has passed."""
        job = self.submit(key, case)
        while True:
            try:
                return job.future.result(timeout=POLL)
            except TimeoutError:
                pass
            if job.deadline is not None and job.deadline.elapsed() >= job.deadline.seconds + GRACE:
                raise ProbeTimeout(
                    f"no answer within the check's timeout of {job.deadline.seconds:g}s "
                    f"(+{GRACE:g}s grace); the probe was abandoned")
            if self.run_deadline is not None and self.run_deadline.expired:
                raise RunDeadlinePassed(
                    f"the run deadline of {self.run_deadline.seconds:g}s passed before this "
                    "check finished")
            if on_wait is not None:
                on_wait(job)

    def started_at(self, key: str) -> datetime | None:
        """When the probe of ``key`` started measuring (after waiting for its slot)."""
        job = self._jobs.get(key)
        return job.started_at if job is not None else None

    def close(self) -> None:
        """Stop taking work; do not wait for probes blocked past their deadline."""
        self.runner.stopping.set()
        for job in self._jobs.values():
            job.future.cancel()
        self._pool.shutdown()
