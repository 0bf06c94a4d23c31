"""Secrets leave no trace in text, URLs or data, in any common encoding."""

import base64
import html
import json
from urllib.parse import quote, quote_plus

import pytest

from opsgate.redaction import MASK, Redactor

SECRET = "s3cr3t/+&<v@lue>"


@pytest.mark.parametrize("form", [
    SECRET, quote(SECRET, safe=""), quote_plus(SECRET), html.escape(SECRET),
    json.dumps(SECRET)[1:-1], base64.b64encode(SECRET.encode()).decode(),
    base64.b64encode(f"user:{SECRET}".encode()).decode(),
    base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
])
def test_every_encoding_of_a_secret_is_removed(form):
    redacted = Redactor([SECRET]).text(f"before {form} after")
    assert form not in redacted
    assert redacted.startswith("before ") and redacted.endswith(" after")


def test_sensitive_names_are_masked_in_data():
    data = {"headers": {"Authorization": "Bearer abc", "Cookie": "a=b", "X-Api-Key": "k1",
                        "Accept": "json"}, "rows": [{"idempotency_key": "k", "id": 1}]}
    result = Redactor().data(data)
    assert result["headers"] == {"Authorization": MASK, "Cookie": MASK, "X-Api-Key": MASK,
                                 "Accept": "json"}
    assert result["rows"] == [{"idempotency_key": MASK, "id": 1}]


def test_url_password_and_token_parameters_are_masked():
    url = Redactor().url("https://ops:hunter22@example.test/x?token=abc123&page=2")
    assert "hunter22" not in url and "abc123" not in url and "page=2" in url


def test_short_values_are_not_treated_as_secrets():
    assert Redactor(["ab"]).text("about cabs") == "about cabs"
