"""Per-request HTTP plumbing shared by every emulator: body reading, send helpers, resets.

``EmulatorHandler`` reads the request up front, hands it to the emulator's ``route`` and
offers the ``send_*`` helpers; ``EmulatorHTTPServer`` is the threading server behind it
(no DNS on bind, ``TCP_NODELAY``, live connections tracked so ``stop()`` can close them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from emp_tasks.sandbox.faults import Fault

__all__ = ["MAX_BODY", "EmulatorHTTPServer", "EmulatorHandler", "Router"]

log = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024


class Router(Protocol):
    """The emulator a server hands each request to (``EmulatorServer`` in practice)."""

    def route(self, h: EmulatorHandler) -> None:
        """Answer one request."""


class EmulatorHandler(BaseHTTPRequestHandler):
    """Per-request plumbing: reads the body up front, offers send helpers to emulators."""

    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "emp-sandbox/1"
    sys_version = ""
    server: EmulatorHTTPServer

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


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its emulator and tracks live connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many clients reconnect at once after injected resets

    def __init__(self, address: tuple[str, int], emulator: Router) -> None:
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
