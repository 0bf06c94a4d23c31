"""Keep secrets out of every output: by value (in any encoding) and by name.

A ``Redactor`` knows the secret values of a run (everything expanded from ``${VAR}`` and the
literal values of sensitive headers) and the patterns of sensitive names. ``text()`` removes
each value raw, URL-encoded, base64-encoded (alone or inside ``user:secret``), HTML- and
JSON-escaped; ``data()`` walks JSON-like structures and also masks values under sensitive keys.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import html
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 4
DEFAULT_SENSITIVE_NAMES = (
    "authorization", "proxy-authorization", "cookie", "set-cookie",
    "*secret*", "*token*", "*key*", "*password*", "*passwd*", "*session*", "*credential*",
)
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def _encodings(secret: str) -> set[str]:
    """The forms a secret can take in text output."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret),
        html.escape(secret),
        html.escape(secret, quote=False),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
    }
    raw = secret.encode()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        forms.update({text, text.rstrip("=")})
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Redactor:
    """Removes known secret values and masks values of sensitive names."""

    def __init__(self, secrets: Iterable[str] = (),
                 sensitive_names: Iterable[str] = DEFAULT_SENSITIVE_NAMES):
        self._secrets: set[str] = set()
        self._forms: list[str] = []
        self._patterns = tuple(name.lower() for name in sensitive_names)
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Treat ``secret`` as secret from now on (values shorter than 4 chars are ignored)."""
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            return
        if secret in self._secrets:
            return
        self._secrets.add(secret)
        forms = set(self._forms) | _encodings(secret)
        self._forms = sorted(forms, key=len, reverse=True)

    def is_sensitive(self, name: str) -> bool:
        """Whether a header, key or column called ``name`` holds a secret."""
        lowered = str(name).lower()
        return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in self._patterns)

    def text(self, value: str) -> str:
        """``value`` with every known secret form replaced by the mask."""
        if not value or not self._forms:
            return value
        for form in self._forms:
            if form in value:
                value = value.replace(form, MASK)
        return _BASE64_RUN.sub(self._base64_token, value)

    def _base64_token(self, match: re.Match[str]) -> str:
        token = match.group(0)
        padded = token + "=" * (-len(token) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(padded).decode("utf-8")
            except (binascii.Error, ValueError):
                continue
            if any(secret in decoded for secret in self._secrets):
                return MASK
        return token

    def url(self, value: str) -> str:
        """A URL with its password and sensitive query parameters masked."""
        try:
            parts = urlsplit(value)
        except ValueError:
            return self.text(value)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
        query = "&".join(self._query_pair(pair) for pair in parts.query.split("&")) \
            if parts.query else ""
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))

    def _query_pair(self, pair: str) -> str:
        name, sep, _ = pair.partition("=")
        return f"{name}={MASK}" if sep and self.is_sensitive(name) else pair

    def data(self, value: Any, key: str | None = None) -> Any:
        """A deep copy of JSON-like ``value`` with secrets removed and sensitive keys masked."""
        if key is not None and self.is_sensitive(key) and value not in (None, "", [], {}):
            return MASK
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.url(value) if "://" in value else self.text(value)
        return value
