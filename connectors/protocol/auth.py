"""Request auth for the HTTP client: a bearer token or an API key in a named header.

Both register their secret for redaction when built, so a token never reaches a log, an event
or an error's context, and neither shows it in its repr.
"""

from __future__ import annotations

import requests
from requests.auth import AuthBase

from connectors.protocol.gate import key_id
from connectors.redact import register_secret

__all__ = ["ApiKeyHeaderAuth", "BearerAuth"]


class BearerAuth(AuthBase):
    """`Authorization: Bearer <token>`; the token never shows in repr or logs."""

    def __init__(self, token: str) -> None:
        register_secret(token)
        self._token = token
        self.key_id = key_id(token)  # a hash, so a limiter can tell keys apart

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=[REDACTED])"


class ApiKeyHeaderAuth(AuthBase):
    """An API key sent raw in a named header (e.g. `x-goog-api-key`)."""

    def __init__(self, header: str, key: str) -> None:
        register_secret(key)
        self._header = header
        self._key = key
        self.key_id = key_id(key)  # a hash, so a limiter can tell keys apart

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._header] = self._key
        return request

    def __repr__(self) -> str:
        return f"ApiKeyHeaderAuth(header={self._header!r}, key=[REDACTED])"
