"""What every route shares: the running demo, the JSON body, error answers, the secret."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any

from flask import current_app, jsonify, request

from opsgate.demo.context import SECRET_HEADER, DemoContext


def demo() -> DemoContext:
    """The running demo's context."""
    return current_app.config["DEMO"]


def json_body() -> dict[str, Any]:
    """The request's JSON object, or an empty dict when there is none."""
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def error(status: int, code: str, message: str = "") -> tuple[Any, int]:
    """A JSON error answer: ``{"error": code, "message": ...}``."""
    body: dict[str, Any] = {"error": code}
    if message:
        body["message"] = message
    return jsonify(body), status


def require_secret(view: Callable[..., Any]) -> Callable[..., Any]:
    """401 without the ``X-Ops-Secret`` header, 403 with a wrong one (fail closed).

    The ``open_internal`` fault is the classic fail-open bug: a missing header is let through;
    ``wrong_secret_accepted`` checks only that the header is there, so any value gets in.
    """

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            if not demo().has("open_internal"):
                return error(401, "unauthorized", f"{SECRET_HEADER} header required")
        elif not hmac.compare_digest(given.encode(), demo().secret.encode()) and \
                not demo().has("wrong_secret_accepted"):
            return error(403, "forbidden", f"wrong {SECRET_HEADER}")
        return view(*args, **kwargs)

    return guarded
