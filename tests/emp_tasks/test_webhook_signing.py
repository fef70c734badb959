"""Webhook signatures, checked by the `standardwebhooks` package's own verifier."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from connectors.errors import ConnectorError
from connectors.redact import scrub
from emp_tasks.webhook_signing import (
    SECRET_ENV,
    new_message_id,
    parse_secrets,
    secrets_from_env,
    signed_headers,
)

OLD = "whsec_" + base64.b64encode(b"old-signing-key-0123456789abcdef").decode()
NEW = "whsec_" + base64.b64encode(b"new-signing-key-fedcba9876543210").decode()
BODY = '{"type":"complete_job","job_id":"j-1"}'


def test_a_signed_delivery_verifies_with_standardwebhooks() -> None:
    headers = signed_headers("msg_1", int(time.time()), BODY, parse_secrets(OLD))
    assert Webhook(OLD).verify(BODY, headers) == {"type": "complete_job", "job_id": "j-1"}
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")


def test_several_secrets_sign_with_each_so_either_verifies_during_a_rotation() -> None:
    headers = signed_headers("msg_2", int(time.time()), BODY, parse_secrets(f"{OLD} {NEW}"))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (OLD, NEW):
        Webhook(secret).verify(BODY, headers)
    other = "whsec_" + base64.b64encode(b"a-third-key-nobody-uses-0000").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(BODY, headers)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("body", '{"type":"fail_job","job_id":"j-1"}'),
        ("webhook-id", "msg_other"),
        ("webhook-timestamp", "one second earlier"),  # the same on every collecting process
    ],
)
def test_a_changed_body_id_or_timestamp_fails_verification(change: str, value: str) -> None:
    now = int(time.time())
    headers = signed_headers("msg_3", now, BODY, parse_secrets(OLD))
    body = value if change == "body" else BODY
    if change != "body":
        headers[change] = str(now - 1) if change == "webhook-timestamp" else value
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD).verify(body, headers)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (None, "is not set"),
        ("   ", "is not set"),
        ("whsec_not*base64!", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 16 bytes"),
    ],
)
def test_a_missing_or_malformed_secret_is_a_configuration_error_naming_the_variable(
    raw: str | None, says: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_secrets(raw)
    assert caught.value.message.startswith(SECRET_ENV)
    assert says in caught.value.message
    assert caught.value.context["variables"] == [SECRET_ENV]
    assert caught.value.retryable is False


def test_a_secret_read_from_the_environment_is_scrubbed_from_any_text() -> None:
    secrets_from_env({SECRET_ENV: f"{OLD} {NEW}"})
    text = scrub(f"a log line with {OLD} and {NEW.removeprefix('whsec_')}")
    assert OLD not in text
    assert NEW.removeprefix("whsec_") not in text


def test_message_ids_are_unique() -> None:
    assert len({new_message_id() for _ in range(100)}) == 100
