"""Emulator state served over HTTP: call log, control plane (``/_sandbox/``), ``/_files/``.

* ``CallLog`` - one redacted ``CallRecord`` per provider or file request;
* ``GET /_sandbox/calls[?path_prefix=]``, ``GET|POST /_sandbox/faults``,
  ``POST /_sandbox/reset`` - never logged as provider calls;
* ``GET /_files/<name>`` - files the emulator generated, kept in memory (``FileStore``);
* ``GET /_files/blob?size=N&type=mime&seed=s`` - N pseudo-random bytes, streamed in chunks.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from emp_tasks.sandbox.faults import Fault, FaultQueue
from emp_tasks.sandbox.handler import EmulatorHandler

__all__ = [
    "BLOB_CHUNK",
    "CONTROL_PREFIX",
    "FILES_PREFIX",
    "MAX_BLOB",
    "RECORDED_HEADERS",
    "SECRET_HEADERS",
    "SECRET_QUERY",
    "CallLog",
    "CallRecord",
    "ControlledEmulator",
    "FileStore",
    "handle_control",
    "serve_file",
]

CONTROL_PREFIX = "/_sandbox/"
FILES_PREFIX = "/_files/"
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


class CallLog:
    """Thread-safe, append-only list of ``CallRecord`` (until ``clear``)."""

    def __init__(self) -> None:
        self._records: list[CallRecord] = []
        self._lock = threading.Lock()

    def add(self, h: EmulatorHandler, kind: str, started: float, wall: float) -> None:
        """Record ``h`` as it stands now, minus credential headers and query values."""
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
            self._records.append(record)

    def records(self, path_prefix: str | None = None) -> list[CallRecord]:
        """A copy of the log, optionally only paths starting with ``path_prefix``."""
        with self._lock:
            records = list(self._records)
        if path_prefix is None:
            return records
        return [r for r in records if r.path.startswith(path_prefix)]

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()


class ControlledEmulator(Protocol):
    """The emulator state the control plane reads and changes (``EmulatorServer``)."""

    faults: FaultQueue

    def calls(self, path_prefix: str | None = None) -> list[CallRecord]:
        """A copy of the call log."""
        ...

    def reset(self) -> None:
        """Clear the call log and queued faults."""

    def queue_faults(
        self, faults: Iterable[Fault | Mapping[str, Any]], match: Mapping[str, Any] | None = None
    ) -> int:
        """Queue faults; raises ``ValueError`` on a bad one."""
        ...


class FileStore:
    """Thread-safe in-memory files, served by name at ``/_files/<name>``."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Serve ``data`` as ``name`` (replacing any earlier file of that name)."""
        with self._lock:
            self._files[name] = (data, content_type)

    def get(self, name: str) -> tuple[bytes, str] | None:
        """``(data, content_type)`` of a stored file, or None."""
        with self._lock:
            return self._files.get(name)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._files


def handle_control(emulator: ControlledEmulator, h: EmulatorHandler) -> None:
    """Answer one ``/_sandbox/...`` request."""
    route = (h.command, h.path_only.rstrip("/"))
    if route == ("GET", "/_sandbox/calls"):
        calls = emulator.calls(h.query.get("path_prefix"))
        h.send_json(200, [c.to_dict() for c in calls])
    elif route == ("GET", "/_sandbox/faults"):
        pending = [{"fault": f.to_dict(), "match": m} for f, m in emulator.faults.pending()]
        h.send_json(200, pending)
    elif route == ("POST", "/_sandbox/faults"):
        _control_faults(emulator, h)
    elif route == ("POST", "/_sandbox/reset"):
        emulator.reset()
        h.send_json(200, {"ok": True})
    else:
        h.send_json(404, {"error": f"Unknown sandbox endpoint: {h.command} {h.path_only}"})


def _control_faults(emulator: ControlledEmulator, h: EmulatorHandler) -> None:
    body = h.body_json
    try:
        if not h.json_ok or not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        faults, match = body.get("faults"), body.get("match")
        if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
            raise ValueError("'faults' must be a list of objects")
        if match is not None and not isinstance(match, dict):
            raise ValueError("'match' must be an object")
        queued = emulator.queue_faults(faults, match)
    except ValueError as exc:
        h.send_json(400, {"error": str(exc)})
        return
    h.send_json(200, {"queued": queued, "pending": len(emulator.faults)})


def serve_file(files: FileStore, h: EmulatorHandler) -> None:
    """Answer one ``/_files/...`` request from ``files`` (or the streamed blob)."""
    name = h.path_only[len(FILES_PREFIX) :]
    if h.command != "GET":
        h.send_json(405, {"error": "Method not allowed"}, {"Allow": "GET"})
    elif name == "blob":
        _serve_blob(h)
    else:
        entry = files.get(name)
        if entry is None:
            h.send_json(404, {"error": f"File not found: {name}"})
        else:
            h.send_bytes(200, entry[0], entry[1])


def _serve_blob(h: EmulatorHandler) -> None:
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
