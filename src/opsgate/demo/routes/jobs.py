"""Jobs: create one (optionally waiting for its end) and read it."""

from __future__ import annotations

import re
import time

from flask import Blueprint, jsonify

from opsgate.demo import jobs
from opsgate.demo.database import utcnow
from opsgate.demo.routes.common import demo, error, json_body

blueprint = Blueprint("jobs", __name__)
KIND = re.compile(r"^[a-z][a-z0-9_-]{0,29}$")
MAX_WAIT_S = 10.0
POLL_S = 0.05


@blueprint.post("/api/jobs")
def create():
    """Queue a job (``{"kind": "smoke"}``); ``wait_s`` waits up to that long for its end."""
    body = json_body()
    kind = body.get("kind", "smoke")
    if not isinstance(kind, str) or not KIND.match(kind):
        return error(400, "bad_kind", "kind is a short lower-case name such as 'smoke'")
    wait = body.get("wait_s", 0)
    if not isinstance(wait, int | float) or isinstance(wait, bool) or not 0 <= wait <= MAX_WAIT_S:
        return error(400, "bad_wait", f"wait_s is a number of seconds up to {MAX_WAIT_S:g}")
    with demo().engine.begin() as conn:
        job_id = jobs.enqueue(conn, kind, utcnow())
    return jsonify(_wait(job_id, float(wait))), 201


def _wait(job_id: int, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        with demo().engine.connect() as conn:
            job = jobs.get(conn, job_id)
        assert job is not None
        if job["status"] in jobs.TERMINAL or time.monotonic() >= deadline:
            return job
        time.sleep(POLL_S)


@blueprint.get("/api/jobs/<int:job_id>")
def read(job_id: int):
    """The job, or 404."""
    with demo().engine.connect() as conn:
        job = jobs.get(conn, job_id)
    return jsonify(job) if job is not None else error(404, "no_such_job")
