"""A scripted `requests` transport for testing a connector without sockets or servers.

Mount a `FakeAdapter` on a real `requests.Session` (`fake_session` does it) and pass that session
to your connector: everything above the transport - auth, JSON encoding, params, hooks,
redirects - is the real requests code. Each request the session sends pops the next scripted
item: a `Reply` becomes a `requests.Response`, an exception instance is raised (e.g.
`requests.ConnectTimeout()` to test a timeout). Every PreparedRequest is recorded, so a test
can assert on what was sent, or that nothing was::

    session, adapter = fake_session(json_reply({"id": "r-1"}), json_reply({"done": True}))
    connector = MyConnector(settings, session=session)
    connector.process_job(job)
    assert body_json(adapter.requests[0])["prompt"] == "a horse"

A request beyond the script raises AssertionError naming it. Nothing here imports pytest.
A body is held whole and `iter_content` slices it; to test network chunking, a stream cut
mid-body or read timing, use a real local server.
"""

from __future__ import annotations

import json
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
    """A scripted HTTP response: status, body bytes, headers, and a reason phrase."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None  # None: the standard phrase for `status`

    def build(self, request: requests.PreparedRequest) -> requests.Response:
        """The `requests.Response` this reply is, answering `request`."""
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
    except ValueError:  # a status no standard names (e.g. 599)
        return ""


def json_reply(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON response (Content-Type application/json)."""
    return Reply(
        status,
        json.dumps(data).encode(),
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
        self.timeouts: list[Any] = []  # the `timeout` each request was sent with

    def add(self, *items: Reply | BaseException) -> FakeAdapter:
        """Append replies (or exceptions) to the script; returns the adapter."""
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
        """Record `request` and answer with the next scripted item (or raise it)."""
        self.requests.append(request)
        self.timeouts.append(timeout)
        if not self.script:
            raise AssertionError(f"FakeAdapter: unexpected request {request.method} {request.url}")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item.build(request)

    def close(self) -> None:
        """Nothing to close: there are no connections."""

    @property
    def last(self) -> requests.PreparedRequest:
        """The most recent request; AssertionError when none was sent."""
        if not self.requests:
            raise AssertionError("FakeAdapter received no request")
        return self.requests[-1]

    @property
    def last_url(self) -> str:
        """The URL of the most recent request."""
        return self.last.url or ""


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
    """The JSON body a recorded request carried; AssertionError when it has no text body."""
    body = request.body
    if isinstance(body, bytes):
        body = body.decode()
    if not isinstance(body, str):
        raise AssertionError(f"request has no text body: {body!r}")
    return json.loads(body)
