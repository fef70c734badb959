"""A scripted WebSocket for the WebSocket mode's unit tests: no socket, no server.

`FakeSocket(*script)` answers each `recv()` with the next item: a `str` or `bytes` frame, or an
exception instance, which is raised. `FakeConnect` is the mode's socket factory: it hands out
the sockets it was given (or raises) and records each URL and timeout it was asked for.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FakeClock", "FakeConnect", "FakeSocket", "frame"]


def frame(kind: str, **data: Any) -> str:
    """A ComfyUI-shaped text frame."""
    return json.dumps({"type": kind, "data": data})


class FakeSocket:
    """Plays a script of frames and exceptions; records timeouts and whether it was closed."""

    def __init__(self, *script: str | bytes | BaseException, clock: Any = None) -> None:
        self.script = list(script)
        self.timeouts: list[float | None] = []
        self.closed = False
        self.clock = clock  # a FakeClock to advance by one second per frame, if given

    def recv(self) -> str | bytes:
        assert self.script, "recv() beyond the script"
        item = self.script.pop(0)
        if self.clock is not None:
            self.clock.now += 1.0
        if isinstance(item, BaseException):
            raise item
        return item

    def settimeout(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)

    def close(self) -> None:
        self.closed = True


class FakeConnect:
    """The socket factory: returns its sockets in order, or raises `error`; records calls."""

    def __init__(self, *sockets: FakeSocket, error: BaseException | None = None) -> None:
        self.sockets = list(sockets)
        self.error = error
        self.calls: list[tuple[str, float]] = []

    def __call__(self, url: str, timeout: float) -> FakeSocket:
        self.calls.append((url, timeout))
        if self.error is not None:
            raise self.error
        return self.sockets.pop(0)


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
