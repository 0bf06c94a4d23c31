"""``POST /auth/login``: a session, and a ``refresh_token`` cookie (HttpOnly, Secure)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Blueprint, jsonify

from opsgate.demo.context import SMOKE_USER
from opsgate.demo.database import utcnow
from opsgate.demo.routes.common import demo, error, json_body
from opsgate.demo.tables import sessions

blueprint = Blueprint("auth", __name__)
SESSION_SECONDS = 900


@blueprint.post("/auth/login")
def login():
    """The smoke-test user logs in with the ops secret as its password."""
    body = json_body()
    password = body.get("password")
    if body.get("username") != SMOKE_USER or not isinstance(password, str) or \
            not hmac.compare_digest(password.encode(), demo().secret.encode()):
        return error(401, "invalid_credentials")
    session, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    with demo().engine.begin() as conn:
        conn.execute(sessions.insert().values(
            id=hashlib.sha256(session.encode()).hexdigest(), username=SMOKE_USER,
            created_at=utcnow()))
    response = jsonify({"session": session, "user": SMOKE_USER, "expires_in": SESSION_SECONDS})
    secure = not demo().has("insecure_cookie")
    response.set_cookie("refresh_token", refresh, max_age=30 * 86400, path="/auth",
                        httponly=secure, secure=secure, samesite="Strict" if secure else None)
    return response
