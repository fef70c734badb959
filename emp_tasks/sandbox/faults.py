"""Fault model for the sandbox emulators: what to break, for which request, and how.

A fault reaches an emulator in one of two ways:

* queued through the control plane (``POST /_sandbox/faults``) or ``FaultQueue.push``,
  optionally restricted by a ``match`` dict that must equal the request's attributes
  (e.g. ``{"workflow_id": "sandbox-image"}``); queued faults fire once, in FIFO order;
* per request, through the ``X-Sandbox-Fault`` header, e.g.
  ``X-Sandbox-Fault: rate_limit;retry_after=2;delay=0.5``. The header wins over the queue
  and does not consume a queued fault, so a client can force an outcome statelessly.

This module is pure (no I/O), so its rules are unit-tested without a server.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard
from urllib.parse import unquote

__all__ = [
    "FAULT_HEADER",
    "CallLimit",
    "Fault",
    "FaultQueue",
    "choose_fault",
    "parse_fault_header",
]

FAULT_HEADER = "X-Sandbox-Fault"

# Upper bound for injected sleeps: a typo must not hang a test run for an hour.
MAX_DELAY_SECONDS = 600.0

_FIELDS = ("kind", "status", "retry_after", "retry_after_ms", "message", "delay", "body", "headers")


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass; True as a status code is always a mistake.
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Fault:
    """One injected failure: its kind plus optional knobs the emulator honours."""

    kind: str
    status: int | None = None
    retry_after: str | float | None = None  # seconds, or an HTTP-date string
    retry_after_ms: int | None = None
    message: str | None = None
    delay: float | None = None  # seconds to sleep before answering
    body: Any = None  # str is sent verbatim, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)

    def retry_after_value(self, default: str | None = None) -> str | None:
        """The Retry-After header value: the fault's own, else ``default``."""
        value = self.retry_after if self.retry_after is not None else default
        if isinstance(value, float) and value.is_integer():
            return str(int(value))  # "2", not "2.0": some clients only parse integers
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form without unset fields."""
        data = {name: getattr(self, name) for name in _FIELDS}
        return {k: v for k, v in data.items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a validated fault from JSON; raises ValueError naming the bad field."""
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
        kind = data.get("kind")
        if not isinstance(kind, str) or not kind:
            raise ValueError("fault 'kind' must be a non-empty string")
        return cls(
            kind=kind,
            status=_status(data.get("status")),
            retry_after=_retry_after(data.get("retry_after")),
            retry_after_ms=_non_negative_int(data.get("retry_after_ms"), "retry_after_ms"),
            message=_optional_str(data.get("message"), "message"),
            delay=_delay(data.get("delay")),
            body=data.get("body"),
            headers=_headers(data.get("headers")),
        )


def _status(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599:
        raise ValueError("fault 'status' must be an integer HTTP status (100-599)")
    return value


def _retry_after(value: object) -> str | float | None:
    if value is None or isinstance(value, str):
        return value
    if _is_number(value) and float(value) >= 0:
        return float(value)
    raise ValueError("fault 'retry_after' must be seconds (>= 0) or an HTTP-date string")


def _non_negative_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if _is_number(value) and float(value) >= 0:
        return int(value)
    raise ValueError(f"fault {name!r} must be a non-negative number")


def _optional_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"fault {name!r} must be a string")


def _delay(value: object) -> float | None:
    if value is None:
        return None
    if _is_number(value) and 0 <= float(value) <= MAX_DELAY_SECONDS:
        return float(value)
    raise ValueError(f"fault 'delay' must be between 0 and {MAX_DELAY_SECONDS:g} seconds")


def _headers(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise ValueError("fault 'headers' must be an object of string values")


# How each header parameter is converted from text before validation.
_HEADER_CONVERTERS: dict[str, Any] = {
    "status": int,
    "retry_after_ms": int,
    "delay": float,
    "retry_after": lambda text: float(text) if _looks_numeric(text) else text,
    "message": str,
    "body": str,
}


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_fault_header(value: str) -> Fault:
    """Parse ``kind;key=value;...`` (values may be %-encoded); raises ValueError."""
    kind, *params = (part.strip() for part in value.split(";"))
    data: dict[str, Any] = {"kind": kind}
    for param in filter(None, params):
        key, sep, raw = param.partition("=")
        key = key.strip()
        if not sep or key not in _HEADER_CONVERTERS:
            raise ValueError(f"bad fault parameter {param!r}")
        try:
            data[key] = _HEADER_CONVERTERS[key](unquote(raw.strip()))
        except ValueError as exc:
            raise ValueError(f"bad value for fault parameter {key!r}: {raw!r}") from exc
    return Fault.from_dict(data)


class FaultQueue:
    """Thread-safe FIFO of one-shot faults, each optionally limited by a match dict."""

    def __init__(self) -> None:
        self._items: list[tuple[Fault, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def push(self, faults: Iterable[Fault], match: Mapping[str, Any] | None = None) -> int:
        """Queue ``faults`` in order, all sharing ``match``; returns how many were queued."""
        entries = [(fault, dict(match or {})) for fault in faults]
        with self._lock:
            self._items.extend(entries)
        return len(entries)

    def take(self, attrs: Mapping[str, Any]) -> Fault | None:
        """Pop and return the first queued fault whose match fits ``attrs``, if any."""
        with self._lock:
            for index, (fault, match) in enumerate(self._items):
                if all(key in attrs and attrs[key] == want for key, want in match.items()):
                    del self._items[index]
                    return fault
        return None

    def pending(self) -> list[tuple[Fault, dict[str, Any]]]:
        """A snapshot of the queued (fault, match) pairs, oldest first."""
        with self._lock:
            return [(fault, dict(match)) for fault, match in self._items]

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class CallLimit:
    """A provider's own rate limit: `rate` calls a second, then 429 with a Retry-After.

    A token bucket of `rate` tokens (at least one), as providers allow short bursts. `take`
    answers 0 for a call within the limit, else the whole seconds to send as Retry-After (at
    least 1, as providers round up).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a call limit must be > 0 calls per second")
        self.rate = rate
        self._capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self._capacity
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> int:
        """0 if this call is within the limit (a token is taken), else Retry-After seconds."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0
            return max(1, math.ceil((1 - self._tokens) / self.rate))


def choose_fault(
    header_fault: Fault | None, queue: FaultQueue, attrs: Mapping[str, Any]
) -> Fault | None:
    """The fault for one request: the header's if given (queue untouched), else the queue's."""
    if header_fault is not None:
        return header_fault
    return queue.take(attrs)
