"""``POST /auth/signup`` and ``POST /auth/login``: users, sessions and a refresh cookie.

Signup answers 201, or 409 ``email_taken`` for an email that already has a user (the
``duplicate_signup`` fault lets a second signup through). Login accepts the smoke-test user
(the ops secret as its password) or a signed-up user, and sets ``refresh_token``: HttpOnly,
Secure, SameSite=Strict, host-only (no Domain) and ``Path=/auth``. The ``insecure_cookie`` fault
drops HttpOnly and Secure; ``cookie_domain`` scopes the cookie to the old domain and ``/``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import Blueprint, jsonify
from sqlalchemy import select

from opsgate.demo.context import SMOKE_USER
from opsgate.demo.database import utcnow
from opsgate.demo.routes.common import demo, error, json_body
from opsgate.demo.tables import sessions, users

blueprint = Blueprint("auth", __name__)
SESSION_SECONDS = 900
COOKIE_PATH = "/auth"
OLD_COOKIE_DOMAIN = "old.opsgate-demo.test"
HASH_ROUNDS = 10_000


@blueprint.post("/auth/signup")
def signup():
    """A new user: ``{"email": ..., "password": ...}``; one user per email."""
    body = json_body()
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or "@" not in email or not isinstance(password, str) \
            or len(password) < 8:
        return error(400, "bad_signup", "give an email and a password of 8+ characters")
    email = email.strip().lower()
    with demo().engine.begin() as conn:
        taken = conn.scalar(select(users.c.id).where(users.c.email == email).limit(1))
        if taken is not None and not demo().has("duplicate_signup"):
            return error(409, "email_taken", "a user with this email exists")
        user = conn.execute(users.insert().values(
            email=email, password_hash=_hash(password), created_at=utcnow())).inserted_primary_key
    return jsonify({"id": user[0], "email": email}), 201


@blueprint.post("/auth/login")
def login():
    """The smoke user (the ops secret as password) or a signed-up user logs in."""
    body = json_body()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or \
            not _valid(username, password):
        return error(401, "invalid_credentials")
    user = username if username == SMOKE_USER else username.strip().lower()
    session, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    with demo().engine.begin() as conn:
        conn.execute(sessions.insert().values(
            id=hashlib.sha256(session.encode()).hexdigest(), username=user[:80],
            created_at=utcnow()))
    response = jsonify({"session": session, "user": user, "expires_in": SESSION_SECONDS})
    secure = not demo().has("insecure_cookie")
    moved = demo().has("cookie_domain")
    response.set_cookie("refresh_token", refresh, max_age=30 * 86400,
                        path="/" if moved else COOKIE_PATH,
                        domain=OLD_COOKIE_DOMAIN if moved else None,
                        httponly=secure, secure=secure, samesite="Strict" if secure else None)
    return response


def _valid(username: str, password: str) -> bool:
    if username == SMOKE_USER:
        return hmac.compare_digest(password.encode(), demo().secret.encode())
    with demo().engine.connect() as conn:
        stored = conn.scalar(select(users.c.password_hash).where(
            users.c.email == username.strip().lower()).order_by(users.c.id).limit(1))
    if stored is None:
        return False
    salt = stored.partition("$")[0]
    return hmac.compare_digest(_hash(password, salt), stored)


def _hash(password: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), HASH_ROUNDS)
    return f"{salt}${digest.hex()}"
