"""``request.sign``: sign each attempt of a request (AWS SigV4, or an HMAC-SHA256 webhook header).

``sigv4`` signs with ``httpx_auth.AWS4Auth`` (S3, MinIO and other AWS-style APIs);
``hmac_sha256`` writes a header such as Stripe's ``Stripe-Signature: t=<unix>,v1=<hex>`` over a
payload made of a fresh timestamp and the exact body bytes sent. A signer runs before every
attempt (retries are signed again with a fresh clock). The secrets come from ``${VAR}`` and are
redacted like every expanded value; literal ones, the signature headers (by name) and each
signature made (``fields["secrets"]`` of the observation) are redacted too. ``httpx_auth`` is
imported only when a check signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from opsgate.config.base import Strict

if TYPE_CHECKING:
    import httpx

def _not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty: a signature made with an empty secret proves nothing")
    return value


Secret = Annotated[str, AfterValidator(_not_empty)]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", max_length=100)]
Signer = Callable[["httpx.Request"], tuple[str, list[str]]]
"""Signs a request in place; returns when (for the evidence) and the values to redact."""

_FIELD = re.compile(r"\{([A-Za-z_]*)\}")


class SigV4(Strict):
    """AWS Signature Version 4 (``Authorization: AWS4-HMAC-SHA256 ...``)."""

    access_key: Secret
    secret_key: Secret
    region: Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=40)]
    service: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", max_length=40)] = "s3"
    session_token: Secret | None = None

    def signer(self) -> Signer:
        from httpx_auth import AWS4Auth

        extra = {"security_token": self.session_token} if self.session_token else {}
        auth = AWS4Auth(self.access_key, self.secret_key, self.region, self.service, **extra)

        def sign(request: httpx.Request) -> tuple[str, list[str]]:
            next(auth.auth_flow(request))
            authorization = request.headers["Authorization"]
            return request.headers["x-amz-date"], [authorization,
                                                   authorization.rpartition("Signature=")[2]]

        return sign


class HmacSha256(Strict):
    """An HMAC-SHA256 signature header over a fresh timestamp and the body (Stripe by default).

    ``payload`` may use ``{timestamp}`` (unix seconds), ``{body}`` (the exact bytes sent),
    ``{method}`` and ``{path}``; ``format`` may use ``{timestamp}`` and must use
    ``{signature}``. ``timestamp_header`` also sends the timestamp on its own (Slack-style).
    """

    secret: Secret
    header: HeaderName = "Stripe-Signature"
    format: str = "t={timestamp},v1={signature}"
    payload: str = "{timestamp}.{body}"
    encoding: Literal["hex", "base64"] = "hex"
    timestamp_header: HeaderName | None = None

    @field_validator("format")
    @classmethod
    def _format(cls, text: str) -> str:
        _only(text, {"timestamp", "signature"}, "format")
        if "{signature}" not in text:
            raise ValueError("format must contain {signature}")
        return text

    @field_validator("payload")
    @classmethod
    def _payload(cls, text: str) -> str:
        _only(text, {"timestamp", "body", "method", "path"}, "payload")
        if "{body}" not in text:
            raise ValueError("payload must contain {body}: the signature covers the body sent")
        return text

    def signer(self) -> Signer:
        def sign(request: httpx.Request) -> tuple[str, list[str]]:
            timestamp = str(int(time.time()))
            digest = hmac.new(self.secret.encode(), self.message(request, timestamp),
                              hashlib.sha256).digest()
            signature = (digest.hex() if self.encoding == "hex"
                         else base64.b64encode(digest).decode())
            value = self.format.replace("{timestamp}", timestamp).replace("{signature}",
                                                                           signature)
            request.headers[self.header] = value
            if self.timestamp_header:
                request.headers[self.timestamp_header] = timestamp
            return timestamp, [value, signature]

        return sign

    def message(self, request: httpx.Request, timestamp: str) -> bytes:
        """The signed bytes: ``payload`` filled, ``{body}`` the request's exact content."""
        text = (self.payload.replace("{timestamp}", timestamp)
                .replace("{method}", request.method).replace("{path}", request.url.raw_path
                                                             .decode("ascii")))
        return request.read().join(part.encode() for part in text.split("{body}"))


def _only(text: str, allowed: set[str], key: str) -> None:
    unknown = sorted({name for name in _FIELD.findall(text)} - allowed)
    if unknown:
        raise ValueError(f"{key} uses {', '.join('{' + n + '}' for n in unknown)}; it may use "
                         f"{', '.join('{' + n + '}' for n in sorted(allowed))}")


class Signing(Strict):
    """``request.sign``: exactly one of ``sigv4`` or ``hmac_sha256``."""

    sigv4: SigV4 | None = None
    hmac_sha256: HmacSha256 | None = None

    @model_validator(mode="after")
    def _one(self) -> Signing:
        if (self.sigv4 is None) == (self.hmac_sha256 is None):
            raise ValueError("sign takes exactly one of 'sigv4' or 'hmac_sha256'")
        return self

    @property
    def method(self) -> SigV4 | HmacSha256:
        method = self.sigv4 or self.hmac_sha256
        assert method is not None
        return method

    @property
    def name(self) -> str:
        return "sigv4" if self.sigv4 is not None else "hmac_sha256"

    @property
    def header(self) -> str:
        """The header that carries the signature."""
        return self.hmac_sha256.header if self.hmac_sha256 is not None else "Authorization"

    def secrets(self) -> list[str]:
        if self.sigv4 is not None:
            return [v for v in (self.sigv4.secret_key, self.sigv4.session_token) if v]
        return [self.method.secret]  # type: ignore[union-attr]

    def signer(self) -> Signer:
        return self.method.signer()


def _signings(requests: Iterable[object]) -> list[Signing]:
    return [sign for request in requests if (sign := getattr(request, "sign", None))]


def secret_values(requests: Iterable[object]) -> list[str]:
    """The signing secrets of ``requests`` (``HttpRequest``), literal or from ``${VAR}``."""
    return [value for sign in _signings(requests) for value in sign.secrets()]


def signature_headers(requests: Iterable[object]) -> list[str]:
    """The headers the signatures of ``requests`` are sent in (to redact by name)."""
    return sorted({sign.header.lower() for sign in _signings(requests)})
