"""Reusable loopback HTTP emulator base: lifecycle, call log, fault queue, routing.

A provider emulator subclasses ``EmulatorServer`` and overrides ``handle_provider``.
Everything else is shared by all emulators on the same port:

* ``/_sandbox/calls`` (GET), ``/_sandbox/faults`` (GET/POST), ``/_sandbox/reset`` (POST) -
  the control plane; these requests are never logged as provider calls;
* ``/_files/<name>`` - files the emulator generated, kept in memory;
* ``/_files/blob?size=N&type=mime&seed=s`` - N pseudo-random bytes, streamed in chunks.

``EmulatorHandler`` (``handler.py``) does the per-request plumbing (keep-alive, body
reading, send helpers, abrupt resets) and hands every request to ``EmulatorServer.route``;
the call log, control plane and file serving live in ``control.py``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from emp_tasks.sandbox.control import (
    CONTROL_PREFIX,
    FILES_PREFIX,
    CallLog,
    CallRecord,
    FileStore,
    handle_control,
    serve_file,
)
from emp_tasks.sandbox.faults import (
    FAULT_HEADER,
    CallLimit,
    Fault,
    FaultQueue,
    choose_fault,
    parse_fault_header,
)
from emp_tasks.sandbox.handler import EmulatorHandler, EmulatorHTTPServer

__all__ = ["CallRecord", "EmulatorHandler", "EmulatorServer"]


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
        rate_limit: float = 0.0,
    ) -> None:
        self.host, self.port = host, port
        self.tokens = frozenset(tokens)
        self.latency = latency
        self.call_limit: CallLimit | None = None
        self.set_rate_limit(rate_limit)
        self.faults = FaultQueue()
        self._calls = CallLog()
        self._files = FileStore()
        self._httpd: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind (port 0 picks a free port) and serve in a background daemon thread."""
        if self._httpd is not None:
            return self
        self._httpd = EmulatorHTTPServer((self.host, self.port), self)
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
        return self._calls.records(path_prefix)

    def reset(self) -> None:
        """Clear the call log and every queued fault (generated files stay served)."""
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

    def set_rate_limit(self, calls_per_second: float) -> None:
        """Answer provider calls beyond this many a second with 429 + Retry-After (0: never)."""
        self.call_limit = CallLimit(calls_per_second) if calls_per_second > 0 else None

    def add_file(self, name: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` at ``/_files/<name>``; returns its absolute URL."""
        self._files.put(name, data, content_type)
        return self.file_url(name)

    def has_file(self, name: str) -> bool:
        """Whether ``/_files/<name>`` is already being served."""
        return name in self._files

    def file_url(self, name: str) -> str:
        """Absolute URL of a served file."""
        return f"{self.url}{FILES_PREFIX}{name}"

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
        if h.path_only.startswith(CONTROL_PREFIX):
            handle_control(self, h)
            return
        kind = "file" if h.path_only.startswith(FILES_PREFIX) else "provider"
        h.log_commit = functools.partial(self._calls.add, h, kind, time.monotonic(), time.time())
        token = self.extract_token(h) if kind == "provider" else None
        h.auth_present, h.auth_valid = token is not None, token in self.tokens
        if kind == "file":
            serve_file(self._files, h)
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
        if self._over_limit(h):
            return
        if self.latency > 0:
            time.sleep(self.latency)
        self.handle_provider(h)

    def _over_limit(self, h: EmulatorHandler) -> bool:
        """Answer 429 + Retry-After when the emulator's own rate limit is spent."""
        retry_after = self.call_limit.take() if self.call_limit is not None else 0
        if retry_after:
            h.extra["fault"] = "rate_limited"
            h.send_json(429, {"error": "Too many requests"}, {"Retry-After": str(retry_after)})
        return bool(retry_after)

    def _check_kind(self, fault: Fault) -> Fault:
        if self.fault_kinds and fault.kind not in self.fault_kinds:
            known = ", ".join(sorted(self.fault_kinds))
            raise ValueError(f"unknown fault kind {fault.kind!r} (known: {known})")
        return fault
