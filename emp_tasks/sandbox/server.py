"""Reusable loopback HTTP emulator base: call log, faults, control plane, file serving.

A provider emulator subclasses ``EmulatorServer`` and overrides ``handle_provider``.
Everything else lives here and is shared by all emulators on the same port:

* ``/_sandbox/calls`` (GET), ``/_sandbox/faults`` (GET/POST), ``/_sandbox/reset`` (POST) -
  the control plane; these requests are never logged as provider calls;
* ``/_files/<name>`` - files the emulator generated, kept in memory;
* ``/_files/blob?size=N&type=mime&seed=s`` - N pseudo-random bytes, streamed in chunks.

``EmulatorHandler`` does the per-request plumbing (keep-alive, body reading, send helpers,
abrupt resets) and hands every request to ``EmulatorServer.route``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from emp_tasks.sandbox.faults import (
    FAULT_HEADER,
    Fault,
    FaultQueue,
    choose_fault,
    parse_fault_header,
)

__all__ = ["CallRecord", "EmulatorHandler", "EmulatorServer"]

log = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024
BLOB_CHUNK = 64 * 1024
MAX_BLOB = 8 * 1024**3
RECORDED_HEADERS = frozenset({"content-type", "content-length", "user-agent", "accept"})
# Credential carriers across providers; their values never reach the call log.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}
)
SECRET_QUERY = frozenset({"key", "api_key", "token", "access_token"})


@dataclass(frozen=True)
class CallRecord:
    """One request the emulator handled, as logged (credential values are never kept)."""

    kind: str  # "provider" or "file"
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    auth_present: bool
    auth_valid: bool
    body_json: Any
    body_size: int
    status: int | None  # None when no response was sent (connection reset)
    monotonic: float
    wall_time: float
    extra: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy of the record."""
        return asdict(self)


class EmulatorHandler(BaseHTTPRequestHandler):
    """Per-request plumbing: reads the body up front, offers send helpers to emulators."""

    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "emp-sandbox/1"
    sys_version = ""
    server: _HTTPServer

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        self.path_only = split.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.status_sent: int | None = None
        self.extra: dict[str, Any] = {}
        self.header_fault: Fault | None = None
        self.auth_present = self.auth_valid = False
        self.body, self.body_json, self.json_ok = b"", None, True
        self.log_commit: Callable[[], None] | None = None
        try:
            if self._read_body():
                self.server.emulator.route(self)
        except OSError:
            # The client hung up mid-exchange (or we reset it): nothing left to answer.
            self.close_connection = True
        except Exception:
            log.exception("sandbox handler failed on %s %s", self.command, self.path)
            self._answer_crash()
        finally:
            self.commit_log()  # requests that never got a response are logged too

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bool:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._refuse(411, "Chunked request bodies are not supported")
            return False
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._refuse(413 if length > MAX_BODY else 400, "Bad Content-Length")
            return False
        self.body = self.rfile.read(length)
        if self.body:
            try:
                self.body_json = json.loads(self.body)
            except (ValueError, RecursionError):
                self.json_ok = False
        return True

    def _refuse(self, status: int, message: str) -> None:
        # The unread body would be parsed as the next request, so drop the connection.
        self.close_connection = True
        self.send_json(status, {"error": message}, {"Connection": "close"})

    def _answer_crash(self) -> None:
        if self.status_sent is not None:
            self.close_connection = True  # half-sent response: only closing is safe
            return
        try:
            self.send_json(500, {"error": "Sandbox internal error"})
        except OSError:
            self.close_connection = True

    def commit_log(self) -> None:
        """Append this request's call record now (at most once per request)."""
        commit, self.log_commit = self.log_commit, None
        if commit is not None:
            commit()

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status_sent = code
        # Log before the client can see the response: a test reading the call log
        # right after its request returns must find the record.
        self.commit_log()
        super().send_response(code, message)

    def send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a complete response with an exact Content-Length."""
        self._send_head(status, len(data), content_type, headers)
        self.wfile.write(data)

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send ``obj`` as an ``application/json`` response."""
        self.send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json", headers)

    def send_text(
        self,
        status: int,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send ``text`` (UTF-8) with the given content type."""
        self.send_bytes(status, text.encode("utf-8"), content_type, headers)

    def send_empty(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        """Send a response with no body (Content-Length: 0)."""
        self.send_bytes(status, b"", None, headers)

    def send_stream(
        self, status: int, chunks: Iterable[bytes], length: int, content_type: str
    ) -> None:
        """Send ``length`` bytes from ``chunks`` without holding them all in memory."""
        self._send_head(status, length, content_type, None)
        for chunk in chunks:
            self.wfile.write(chunk)

    def _send_head(
        self,
        status: int,
        length: int,
        content_type: str | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        extra = dict(headers or {})
        names = {name.lower() for name in extra}
        self.send_response(status)
        if content_type and "content-type" not in names:
            self.send_header("Content-Type", content_type)
        for name, value in extra.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def reset_connection(self) -> None:
        """Abort the TCP connection with RST (SO_LINGER 0): the client sees ECONNRESET."""
        self.close_connection = True
        self.status_sent = None
        self.commit_log()
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            # makefile() holds a reference; close it first or close() only drops ours.
            self.rfile.close()
            self.connection.close()

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its emulator and tracks live connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many clients reconnect at once after injected resets

    def __init__(self, address: tuple[str, int], emulator: EmulatorServer) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, EmulatorHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which can stall for seconds on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # Small JSON replies must not wait for Nagle + delayed ACK (40 ms stalls).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """Wake keep-alive handler threads so stop() leaves nothing serving."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by its handler
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request are normal in fault tests; keep stderr quiet.
        log.debug("sandbox connection error from %s", client_address, exc_info=True)


class EmulatorServer:
    """Base class of the provider emulators: a real HTTP server on loopback."""

    name = "emulator"
    #: Fault kinds this emulator understands; the control plane rejects others.
    fault_kinds: frozenset[str] = frozenset()

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = ("sandbox-token",),
        latency: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        self.tokens = frozenset(tokens)
        self.latency = latency
        self.faults = FaultQueue()
        self._calls: list[CallRecord] = []
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind (port 0 picks a free port) and serve in a background daemon thread."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_open_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765`` (wildcard binds map to loopback)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    # -- state -----------------------------------------------------------------------

    def calls(self, path_prefix: str | None = None) -> list[CallRecord]:
        """A copy of the call log, optionally only paths starting with ``path_prefix``."""
        with self._lock:
            records = list(self._calls)
        if path_prefix is None:
            return records
        return [r for r in records if r.path.startswith(path_prefix)]

    def reset(self) -> None:
        """Clear the call log and every queued fault (generated files stay served)."""
        with self._lock:
            self._calls.clear()
        self.faults.clear()

    def queue_faults(
        self, faults: Iterable[Fault | Mapping[str, Any]], match: Mapping[str, Any] | None = None
    ) -> int:
        """Queue faults (objects or JSON dicts) for the next matching provider calls."""
        parsed = [f if isinstance(f, Fault) else Fault.from_dict(f) for f in faults]
        for fault in parsed:
            self._check_kind(fault)
        return self.faults.push(parsed, match)

    def add_file(self, name: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` at ``/_files/<name>``; returns its absolute URL."""
        with self._lock:
            self._files[name] = (data, content_type)
        return self.file_url(name)

    def has_file(self, name: str) -> bool:
        """Whether ``/_files/<name>`` is already being served."""
        with self._lock:
            return name in self._files

    def file_url(self, name: str) -> str:
        """Absolute URL of a served file."""
        return f"{self.url}/_files/{name}"

    # -- hooks for subclasses ----------------------------------------------------------

    def extract_token(self, h: EmulatorHandler) -> str | None:
        """The credential a request carries; default ``Authorization: Bearer <token>``."""
        scheme, _, token = (h.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None

    def handle_provider(self, h: EmulatorHandler) -> None:
        """Answer one provider call; subclasses override."""
        h.send_json(404, {"error": "Not found"})

    def take_fault(self, h: EmulatorHandler, attrs: Mapping[str, Any]) -> Fault | None:
        """The fault for this request (header first, then queue), noted in the call log."""
        fault = choose_fault(h.header_fault, self.faults, attrs)
        if fault is not None:
            h.extra["fault"] = fault.kind
        return fault

    def apply_transport_fault(self, h: EmulatorHandler, fault: Fault) -> bool:
        """Apply the provider-neutral part of a fault; True if a response was produced."""
        if fault.delay and fault.kind != "slow":
            time.sleep(fault.delay)
        if fault.kind == "slow":
            time.sleep(fault.delay if fault.delay is not None else 1.0)
            return False
        if fault.kind == "reset":
            h.reset_connection()
        elif fault.kind == "server_error":
            status = HTTPStatus(fault.status or 500)
            html = f"<html><body><h1>{status.value} {status.phrase}</h1></body></html>"
            self.send_fault(h, fault, status.value, html, "text/html; charset=utf-8")
        elif fault.kind == "empty_error":
            self.send_fault(h, fault, fault.status or 503, "", None)
        elif fault.kind == "non_json":
            body = "<html>Service temporarily unavailable</html>"
            self.send_fault(h, fault, fault.status or 200, body, "text/html; charset=utf-8")
        else:
            return False
        return True

    def send_fault(
        self,
        h: EmulatorHandler,
        fault: Fault,
        status: int,
        default_body: Any,
        content_type: str | None,
        retry_after: str | None = None,
    ) -> None:
        """Send a fault response; the fault's body/headers/retry hints override defaults."""
        headers: dict[str, str] = {}
        value = fault.retry_after_value(retry_after)
        if value is not None:
            headers["Retry-After"] = value
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        headers.update(fault.headers)
        body = default_body if fault.body is None else fault.body
        if isinstance(body, str):
            h.send_bytes(status, body.encode("utf-8"), content_type, headers)
        else:
            h.send_json(status, body, headers)

    # -- routing (called by EmulatorHandler) ------------------------------------------

    def route(self, h: EmulatorHandler) -> None:
        """Dispatch one request to the control plane, file store or provider."""
        if h.path_only.startswith("/_sandbox/"):
            self._control(h)
            return
        kind = "file" if h.path_only.startswith("/_files/") else "provider"
        h.log_commit = functools.partial(self._log_call, h, kind, time.monotonic(), time.time())
        token = self.extract_token(h) if kind == "provider" else None
        h.auth_present, h.auth_valid = token is not None, token in self.tokens
        if kind == "file":
            self._serve_file(h)
        else:
            self._provider(h)

    def _provider(self, h: EmulatorHandler) -> None:
        raw = h.headers.get(FAULT_HEADER)
        if raw is not None:
            try:
                h.header_fault = self._check_kind(parse_fault_header(raw))
            except ValueError as exc:
                h.send_json(400, {"error": f"Invalid {FAULT_HEADER} header: {exc}"})
                return
        if self.latency > 0:
            time.sleep(self.latency)
        self.handle_provider(h)

    def _check_kind(self, fault: Fault) -> Fault:
        if self.fault_kinds and fault.kind not in self.fault_kinds:
            known = ", ".join(sorted(self.fault_kinds))
            raise ValueError(f"unknown fault kind {fault.kind!r} (known: {known})")
        return fault

    def _log_call(self, h: EmulatorHandler, kind: str, started: float, wall: float) -> None:
        headers = {
            name.lower(): value
            for name, value in h.headers.items()
            if name.lower() not in SECRET_HEADERS
            and (name.lower() in RECORDED_HEADERS or name.lower().startswith("x-"))
        }
        query = {k: "<redacted>" if k in SECRET_QUERY else v for k, v in h.query.items()}
        record = CallRecord(
            kind=kind,
            method=h.command,
            path=h.path_only,
            query=query,
            headers=headers,
            auth_present=h.auth_present,
            auth_valid=h.auth_valid,
            body_json=h.body_json,
            body_size=len(h.body),
            status=h.status_sent,
            monotonic=started,
            wall_time=wall,
            extra=dict(h.extra),
        )
        with self._lock:
            self._calls.append(record)

    # -- control plane and files -----------------------------------------------------

    def _control(self, h: EmulatorHandler) -> None:
        route = (h.command, h.path_only.rstrip("/"))
        if route == ("GET", "/_sandbox/calls"):
            calls = self.calls(h.query.get("path_prefix"))
            h.send_json(200, [c.to_dict() for c in calls])
        elif route == ("GET", "/_sandbox/faults"):
            pending = [{"fault": f.to_dict(), "match": m} for f, m in self.faults.pending()]
            h.send_json(200, pending)
        elif route == ("POST", "/_sandbox/faults"):
            self._control_faults(h)
        elif route == ("POST", "/_sandbox/reset"):
            self.reset()
            h.send_json(200, {"ok": True})
        else:
            h.send_json(404, {"error": f"Unknown sandbox endpoint: {h.command} {h.path_only}"})

    def _control_faults(self, h: EmulatorHandler) -> None:
        body = h.body_json
        try:
            if not h.json_ok or not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            faults, match = body.get("faults"), body.get("match")
            if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
                raise ValueError("'faults' must be a list of objects")
            if match is not None and not isinstance(match, dict):
                raise ValueError("'match' must be an object")
            queued = self.queue_faults(faults, match)
        except ValueError as exc:
            h.send_json(400, {"error": str(exc)})
            return
        h.send_json(200, {"queued": queued, "pending": len(self.faults)})

    def _serve_file(self, h: EmulatorHandler) -> None:
        name = h.path_only[len("/_files/") :]
        if h.command != "GET":
            h.send_json(405, {"error": "Method not allowed"}, {"Allow": "GET"})
        elif name == "blob":
            self._serve_blob(h)
        else:
            with self._lock:
                entry = self._files.get(name)
            if entry is None:
                h.send_json(404, {"error": f"File not found: {name}"})
            else:
                h.send_bytes(200, entry[0], entry[1])

    def _serve_blob(self, h: EmulatorHandler) -> None:
        content_type = h.query.get("type", "application/octet-stream")
        try:
            size = int(h.query.get("size", "0"))
        except ValueError:
            size = -1
        if not 0 <= size <= MAX_BLOB or not content_type.isprintable():
            h.send_json(400, {"error": f"'size' must be 0..{MAX_BLOB}, 'type' printable"})
            return
        h.send_stream(200, _blob_chunks(size, h.query.get("seed", "blob")), size, content_type)


def _blob_chunks(size: int, seed: str) -> Iterator[bytes]:
    """``size`` deterministic pseudo-random bytes, one bounded chunk at a time."""
    rng = random.Random(seed)
    remaining = size
    while remaining > 0:
        n = min(BLOB_CHUNK, remaining)
        remaining -= n
        yield rng.randbytes(n)
