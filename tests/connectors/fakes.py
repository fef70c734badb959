"""Test doubles for connector unit tests: a scripted `requests` transport, no sockets.

`FakeAdapter` is mounted on a real `requests.Session`, so everything above the transport (auth,
JSON encoding, params, hooks, redirects) is the real requests code. Each `send` pops the next
scripted item: a `Reply` becomes a `requests.Response`, an exception instance is raised. Every
PreparedRequest it receives is recorded, so a test can assert on what was sent - or that nothing
was.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

__all__ = [
    "FakeAdapter",
    "Reply",
    "body_json",
    "empty_reply",
    "fake_session",
    "html_reply",
    "json_reply",
    "text_reply",
]


@dataclass(frozen=True)
class Reply:
    """A scripted HTTP response."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None

    def build(self, request: requests.PreparedRequest) -> requests.Response:
        response = requests.Response()
        response.status_code = self.status
        response._content = self.body
        response._content_consumed = True  # type: ignore[attr-defined]
        response.headers = CaseInsensitiveDict(dict(self.headers))
        response.encoding = "utf-8"
        response.reason = self.reason if self.reason is not None else _phrase(self.status)
        response.url = request.url or ""
        response.request = request
        return response


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def json_reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON response (Content-Type application/json)."""
    return Reply(
        status,
        jsonlib.dumps(data).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )


def text_reply(
    text: str,
    status: int = 200,
    content_type: str = "text/plain",
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A response with a text body of the given content type."""
    return Reply(status, text.encode(), {"Content-Type": content_type, **(headers or {})})


def html_reply(html: str, status: int) -> Reply:
    """An HTML error page, as a proxy or load balancer sends it."""
    return text_reply(html, status, "text/html; charset=utf-8")


def empty_reply(status: int, headers: Mapping[str, str] | None = None) -> Reply:
    """A response with no body at all."""
    return Reply(status, b"", dict(headers or {}))


class FakeAdapter(BaseAdapter):
    """A transport adapter that replays a script and records every request it is sent."""

    def __init__(self, *script: Reply | BaseException) -> None:
        super().__init__()
        self.script: list[Reply | BaseException] = list(script)
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def add(self, *items: Reply | BaseException) -> FakeAdapter:
        self.script.extend(items)
        return self

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if not self.script:
            raise AssertionError(f"FakeAdapter: unexpected request {request.method} {request.url}")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item.build(request)

    def close(self) -> None:
        pass

    @property
    def last(self) -> requests.PreparedRequest:
        assert self.requests, "FakeAdapter received no request"
        return self.requests[-1]

    @property
    def last_url(self) -> str:
        url = self.last.url
        assert isinstance(url, str)
        return url


def fake_session(
    *script: Reply | BaseException, prefixes: Iterable[str] = ("http://", "https://")
) -> tuple[requests.Session, FakeAdapter]:
    """A real requests.Session whose transport is a FakeAdapter playing `script`."""
    session = requests.Session()
    adapter = FakeAdapter(*script)
    for prefix in prefixes:
        session.mount(prefix, adapter)
    return session, adapter


def body_json(request: requests.PreparedRequest) -> Any:
    """The JSON body a recorded request carried."""
    body = request.body
    if isinstance(body, bytes):
        body = body.decode()
    assert isinstance(body, str), f"request has no text body: {body!r}"
    return jsonlib.loads(body)


class StubSaver:
    """An AssetSaver that records what it was asked to save (or raises a scripted error)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.saved: list[tuple[object, str, str | None]] = []
        self.expects: list[str | None] = []  # the `expect` of each recorded save, in order
        self.error = error

    def save(
        self,
        source: object,
        *,
        job: Any,
        mime_type: str | None = None,
        expect: str | None = None,
    ) -> Any:
        from connectors.assets import SavedAsset

        if self.error is not None:
            raise self.error
        self.saved.append((source, job.id, mime_type))
        self.expects.append(expect)
        key = f"emp-tasks/{job.type}/{job.id}_0123456789ab.png"
        return SavedAsset(
            url=f"https://cdn.example.test/{key}",
            key=key,
            bucket="bucket",
            mime_type="image/png",
            size_bytes=42,
            sha256="0123456789ab" * 5 + "cafe",
        )
