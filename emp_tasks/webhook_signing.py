"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature`.

The signed content is `{id}.{timestamp}.{body}`, the signature `v1,<base64 HMAC-SHA256>` with a
secret from EMP_WEBHOOK_SECRET (`whsec_<base64>`). Several secrets, separated by spaces, each
sign the message and the signatures are sent space-separated: a receiver that knows either one
accepts it, so a secret can be rotated without a window of rejected deliveries.

The secret lives in the environment only (the webhooks worker's, which signs, and the
submitting client's, which refuses webhooks when none is configured); it never travels in a
task message, a result, an event or a log line: every form of it is registered for redaction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import uuid
from collections.abc import Mapping, Sequence

from connectors.errors import ConnectorError, configuration_error
from connectors.redact import register_secret

__all__ = [
    "SECRET_ENV",
    "SECRET_PREFIX",
    "new_message_id",
    "parse_secrets",
    "secrets_from_env",
    "sign",
    "signed_headers",
]

SECRET_ENV = "EMP_WEBHOOK_SECRET"
SECRET_PREFIX = "whsec_"
_MIN_KEY_BYTES = 16  # shorter keys are guessable; Standard Webhooks suggests 24 to 64 bytes


def _problem(message: str) -> ConnectorError:
    return configuration_error(
        f"{SECRET_ENV} {message}", variables=[SECRET_ENV], service="webhooks"
    )


def _decode(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _problem(
            f"must be {SECRET_PREFIX}<base64>, space-separated for several "
            "(a value is not valid base64)"
        ) from None
    if len(key) < _MIN_KEY_BYTES:
        raise _problem(f"keys must be at least {_MIN_KEY_BYTES} bytes once decoded")
    return key


def parse_secrets(raw: str | None) -> tuple[bytes, ...]:
    """The signing keys in EMP_WEBHOOK_SECRET's value; a configuration_error naming it if bad."""
    parts = (raw or "").split()
    if not parts:
        raise _problem(
            "is not set: webhooks are signed (Standard Webhooks) and need a secret, "
            f"e.g. {SECRET_PREFIX}<base64 of 32 random bytes>"
        )
    for part in parts:
        register_secret(part)
        register_secret(part.removeprefix(SECRET_PREFIX))
    return tuple(_decode(part) for part in parts)


def secrets_from_env(env: Mapping[str, str] | None = None) -> tuple[bytes, ...]:
    """The signing keys from the environment (EMP_WEBHOOK_SECRET), registered for redaction."""
    env = os.environ if env is None else env
    return parse_secrets(env.get(SECRET_ENV))


def new_message_id() -> str:
    """A fresh `webhook-id`: one per message, kept by every retry of it."""
    return f"msg_{uuid.uuid4().hex}"


def sign(message_id: str, timestamp: int, body: str, secrets: Sequence[bytes]) -> str:
    """The `webhook-signature` value: one `v1,<base64>` per secret, space-separated."""
    content = f"{message_id}.{timestamp}.{body}".encode()
    signatures = (
        base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in secrets
    )
    return " ".join(f"v1,{signature}" for signature in signatures)


def signed_headers(
    message_id: str, timestamp: int, body: str, secrets: Sequence[bytes]
) -> dict[str, str]:
    """The headers of one delivery attempt (the timestamp is the attempt's, not the event's)."""
    return {
        "content-type": "application/json",
        "user-agent": "emp-tasks-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(message_id, timestamp, body, secrets),
    }
