"""``HEAD``/``GET /storage/<bucket>``: the private object storage bucket, S3-style (SigV4 only).

A request must carry a valid AWS Signature Version 4 made with the demo's storage credentials
(access key ``STORAGE_ACCESS_KEY``, secret key the demo's secret), region ``us-east-1``, service
``s3``, signed within 15 minutes: the verifier below recomputes the canonical request from what
arrived, independently of the signer. Unsigned or wrongly signed requests get 403, an unknown
bucket 404; the ``storage_down`` fault makes the storage answer 503 to everything.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote

from flask import Blueprint, Response, request

from opsgate.demo.routes.common import demo

blueprint = Blueprint("storage", __name__)
BUCKET = "demo-uploads"
STORAGE_ACCESS_KEY = "opsgate-demo"
REGION, SERVICE = "us-east-1", "s3"
MAX_SKEW = timedelta(minutes=15)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})")


@blueprint.route("/storage/<bucket>", methods=["GET", "HEAD"])
def bucket(bucket: str):
    """The bucket the app writes uploads to: 200 with a valid signature."""
    if demo().has("storage_down"):
        return _error(503, "ServiceUnavailable", "the storage cluster has no quorum")
    problem = verify(demo().secret)
    if problem is not None:
        return _error(403, *problem)
    if bucket != BUCKET:
        return _error(404, "NoSuchBucket", "the specified bucket does not exist")
    body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{BUCKET}</Name>'
            "<KeyCount>0</KeyCount></ListBucketResult>")
    return Response(body, 200, {"x-amz-bucket-region": REGION}, content_type="application/xml")


def verify(secret_key: str) -> tuple[str, str] | None:
    """None when the request is validly signed, else (S3 error code, why)."""
    match = _AUTHORIZATION.fullmatch(request.headers.get("Authorization", "").strip())
    if match is None:
        return "AccessDenied", "a SigV4 Authorization header is required"
    if match["key"] != STORAGE_ACCESS_KEY:
        return "InvalidAccessKeyId", "the access key does not exist"
    if (match["region"], match["service"]) != (REGION, SERVICE):
        return "AuthorizationHeaderMalformed", f"the scope must be {REGION}/{SERVICE}"
    stamp = request.headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "AccessDenied", "x-amz-date is missing or malformed"
    if abs(datetime.now(UTC) - signed_at) > MAX_SKEW or stamp[:8] != match["date"]:
        return "RequestTimeTooSkewed", "the request was signed too long ago"
    signed = match["signed"].split(";")
    payload = request.headers.get("x-amz-content-sha256", "")
    if ("host" not in signed or "x-amz-date" not in signed
            or payload != hashlib.sha256(request.get_data()).hexdigest()):
        return "AccessDenied", "host, x-amz-date and the payload hash must be signed"
    expected = signature(secret_key, match["date"], string_to_sign(stamp, match["date"], signed))
    if not hmac.compare_digest(expected, match["signature"]):
        return "SignatureDoesNotMatch", "the request signature does not match"
    return None


def string_to_sign(stamp: str, date: str, signed: list[str]) -> str:
    """SigV4's string to sign for the request that arrived (S3: the path is not normalized)."""
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in sorted(parse_qsl(request.query_string.decode(),
                                                  keep_blank_values=True)))
    headers = "".join(f"{name}:{' '.join(request.headers.get(name, '').split())}\n"
                      for name in signed)
    canonical = "\n".join([request.method, quote(request.path, safe="/-_.~"), query, headers,
                           ";".join(signed), request.headers["x-amz-content-sha256"]])
    scope = f"{date}/{REGION}/{SERVICE}/aws4_request"
    return "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                      hashlib.sha256(canonical.encode()).hexdigest()])


def signature(secret_key: str, date: str, text: str) -> str:
    """HMAC-SHA256 of ``text`` with the key derived from the secret, date, region, service."""
    key = ("AWS4" + secret_key).encode()
    for part in (date, REGION, SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _error(status: int, code: str, message: str) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>")
    return Response(body, status, content_type="application/xml")
