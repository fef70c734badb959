"""The websocket-client edge of the WebSocket mode: the socket, its factory, frames, failures.

`WebSocketLike` is the part of `websocket.WebSocket` the mode uses, so tests pass a scripted
fake; `connect_websocket` is the real factory; `decode_frame` and `socket_error` are the pure
decisions on what arrived (a JSON object, binary bytes, or a malformed frame) and on how the
socket failed (refused, handshake status, closed, timed out). Re-exported by `websocket`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import websocket

from connectors.classify import classify_status, error_from_exception
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = [
    "CLOSED",
    "MALFORMED",
    "Message",
    "SocketFactory",
    "WebSocketLike",
    "connect_websocket",
    "decode_frame",
    "socket_error",
]

R = FailureReason
T = FailureType
Message = dict[str, Any]  # one text frame's JSON object
CLOSED = Classification(T.NETWORK_ERROR, R.CONNECTION_FAILED, True)
# A frame that is not what the protocol promises. Retryable: the provider job runs on, and the
# next attempt reads its outcome (a service resumes by its job key) without paying for it again.
MALFORMED = Classification(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, True)


class WebSocketLike(Protocol):
    """The part of `websocket.WebSocket` the mode uses (tests pass a scripted fake)."""

    def recv(self) -> str | bytes: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def close(self) -> None: ...


# Opens a connected socket for a URL within a connect timeout (seconds), or raises.
SocketFactory = Callable[[str, float], WebSocketLike]


def connect_websocket(url: str, timeout: float) -> WebSocketLike:
    """A connected `websocket-client` socket (handshake done), or its exception."""
    sock: WebSocketLike = websocket.create_connection(url, timeout=timeout)
    return sock


def socket_error(exc: BaseException, where: str, context: dict[str, Any]) -> ConnectorError:
    """Classify a websocket failure (refused, handshake status, closed, timeout) (pure)."""
    if isinstance(exc, websocket.WebSocketBadStatusException):
        status = int(getattr(exc, "status_code", 0) or 0)
        found = classify_status(status) if 100 <= status <= 599 else CLOSED
        return found.error(
            f"WebSocket handshake refused with HTTP {status} ({where})",
            status_code=status or None,
            context=context,
        )
    if isinstance(exc, websocket.WebSocketConnectionClosedException | ConnectionError):
        return CLOSED.error(f"WebSocket closed {where}: {exc}", context=context)
    if isinstance(exc, websocket.WebSocketProtocolException | websocket.WebSocketPayloadException):
        return MALFORMED.error(f"Malformed WebSocket frame {where}: {exc}", context=context)
    if isinstance(exc, websocket.WebSocketTimeoutException | TimeoutError):
        found = Classification(T.TIMEOUT, R.NETWORK_TIMEOUT, True)
        return found.error(f"WebSocket timed out {where}: {exc}", context=context)
    if isinstance(exc, websocket.WebSocketAddressException):
        found = Classification(T.NETWORK_ERROR, R.DNS_RESOLUTION, True)
        return found.error(f"WebSocket address not resolved {where}: {exc}", context=context)
    if isinstance(exc, websocket.WebSocketException | OSError):
        return CLOSED.error(f"WebSocket failed {where}: {exc}", context=context)
    return error_from_exception(exc, context=context)


def decode_frame(data: str | bytes) -> Message | bytes:
    """A text frame's JSON object, or a binary frame's bytes; anything else raises (pure)."""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise MALFORMED.error(
            f"WebSocket text frame is not a JSON object: {data[:200]!r}", context={"frame": data}
        )
    return message
