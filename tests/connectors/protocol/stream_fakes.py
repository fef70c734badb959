"""A scripted HTTP transport for protocol tests: a real requests.Session, no sockets.

`ScriptedTransport` is a requests adapter. Each route (method, URL without query) holds replies
used in order, the last one repeating. A reply's body is served by `ChunkedBody`, one scripted
chunk per read, through a real urllib3 response - so `stream=True`, `iter_content`, closing and
mid-stream failures (an OSError from the body becomes requests' ChunkedEncodingError) behave as
they do on a socket. `ReadClock` lets time pass as the body is read, so deadline tests never wait.
"""

from __future__ import annotations

import io
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter

__all__ = [
    "ChunkedBody",
    "ReadClock",
    "Reply",
    "ScriptedTransport",
    "Sent",
    "json_reply",
    "ndjson_chunks",
    "sse_chunks",
]


@dataclass(frozen=True)
class Reply:
    """A scripted response: status, headers, body chunks, and an error raised after them."""

    status: int = 200
    chunks: Sequence[bytes] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    error_after: BaseException | None = None


def json_reply(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON response."""
    return Reply(
        status,
        [json.dumps(body).encode()],
        {"content-type": "application/json", **(headers or {})},
    )


def sse_chunks(*events: Any) -> list[bytes]:
    """SSE frames: a dict is `data: <json>`, (name, dict) adds `event: name`, a str is raw data."""
    frames = []
    for item in events:
        if isinstance(item, tuple):
            name, data = item
            frames.append(f"event: {name}\ndata: {json.dumps(data)}\n\n")
        elif isinstance(item, str):
            frames.append(f"data: {item}\n\n")
        else:
            frames.append(f"data: {json.dumps(item)}\n\n")
    return [frame.encode() for frame in frames]


def ndjson_chunks(*objects: Any) -> list[bytes]:
    """One JSON line per object (a str is sent as the raw line)."""
    return [(o if isinstance(o, str) else json.dumps(o)).encode() + b"\n" for o in objects]


class ChunkedBody(io.RawIOBase):
    """A socket stand-in: one chunk per read, then an optional error, then EOF."""

    def __init__(self, chunks: Sequence[bytes], error_after: BaseException | None) -> None:
        super().__init__()
        self._chunks = deque(chunks)
        self._error = error_after
        self.bytes_read = 0
        self.reads = 0  # chunks served

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._chunks:
            chunk = self._chunks.popleft()
            self.bytes_read += len(chunk)
            self.reads += 1
            return chunk
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return b""


@dataclass(frozen=True)
class Sent:
    """A request the transport received."""

    method: str
    url: str
    json: Any
    headers: Mapping[str, str]
    stream: bool


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _route_key(method: str, url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return method.upper(), urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class ScriptedTransport(BaseAdapter):
    """A requests adapter that answers from scripted replies and records what was sent."""

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[tuple[str, str], deque[Reply | BaseException]] = {}
        self._builder = HTTPAdapter()
        self.sent: list[Sent] = []
        self.bodies: list[ChunkedBody] = []
        # Kept alive so a test sees whether the connector closed a response: a freed urllib3
        # response closes its body on its own.
        self.responses: list[requests.Response] = []

    def add(self, method: str, url: str, *replies: Reply | BaseException) -> ScriptedTransport:
        """Script replies for a route; an exception is raised as the transport failure."""
        self._routes.setdefault(_route_key(method, url), deque()).extend(replies)
        return self

    def session(self) -> requests.Session:
        """A real Session with this transport mounted for http and https."""
        session = requests.Session()
        session.mount("http://", self)
        session.mount("https://", self)
        return session

    def calls(self, method: str, url: str) -> list[Sent]:
        """The requests sent to one route."""
        key = _route_key(method, url)
        return [s for s in self.sent if _route_key(s.method, s.url) == key]

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        body = json.loads(request.body) if request.body else None
        method, url = request.method or "GET", request.url or ""
        self.sent.append(Sent(method, url, body, dict(request.headers), stream))
        queue = self._routes.get(_route_key(method, url))
        if not queue:
            raise AssertionError(f"unscripted request {method} {url}")
        reply = queue[0] if len(queue) == 1 else queue.popleft()
        if isinstance(reply, BaseException):
            raise reply
        fp = ChunkedBody(reply.chunks, reply.error_after)
        self.bodies.append(fp)
        raw = urllib3.HTTPResponse(
            body=fp,
            headers=dict(reply.headers),
            status=reply.status,
            reason=_phrase(reply.status),
            preload_content=False,
            request_method=method,
            request_url=url,
        )
        response = self._builder.build_response(request, raw)
        self.responses.append(response)
        return response

    def close(self) -> None:
        pass


@dataclass
class ReadClock:
    """A clock driven by a transport: `submit` seconds pass once a request is sent, and
    `per_read` seconds for every chunk a body serves (a slow provider, without the wait)."""

    transport: ScriptedTransport
    per_read: float
    submit: float = 0.0

    def __call__(self) -> float:
        reads = sum(body.reads for body in self.transport.bodies)
        return (self.submit if self.transport.sent else 0.0) + self.per_read * reads
