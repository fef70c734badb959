"""The server side of RFC 6455 for the emulators: the upgrade handshake and frame codec.

Only what an emulator needs: `accept_key` for the 101 reply, `encode_frame` for unmasked
server frames (text, binary, close, pong; never fragmented), and `read_frame` for the masked
frames a client sends. `WebSocketPeer` is one upgraded connection, safe to send on from
several threads (the handler reads, the prompt runner writes).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
import threading
from typing import Protocol

__all__ = [
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Reader",
    "WebSocketPeer",
    "accept_key",
    "encode_frame",
    "read_frame",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
MAX_CLIENT_FRAME = 1 << 20  # clients send tiny control or feature-flag frames


def accept_key(key: str) -> str:
    """The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def encode_frame(opcode: int, payload: bytes, *, rsv: int = 0) -> bytes:
    """One final, unmasked frame (servers never mask); `rsv` sets reserved bits (faults)."""
    head = bytes([0x80 | (rsv & 0x7) << 4 | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack(">H", size)
    else:
        head += bytes([127]) + struct.pack(">Q", size)
    return head + payload


class Reader(Protocol):
    """Where client frames are read from: the handler's buffered `rfile`, or a BytesIO."""

    def read(self, size: int, /) -> bytes | None: ...


def _exactly(stream: Reader, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) < size:
        raise EOFError("connection closed inside a frame")
    return data


def read_frame(stream: Reader) -> tuple[int, bytes]:
    """(opcode, unmasked payload) of the next client frame; EOFError when the peer is gone."""
    first, second = _exactly(stream, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack(">H", _exactly(stream, 2))[0]
    elif size == 127:
        size = struct.unpack(">Q", _exactly(stream, 8))[0]
    if size > MAX_CLIENT_FRAME:
        raise EOFError(f"client frame of {size} bytes refused")
    mask = _exactly(stream, 4) if second & 0x80 else b"\0\0\0\0"
    data = _exactly(stream, size)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class WebSocketPeer:
    """One upgraded connection: thread-safe sends, the read loop, an abrupt drop."""

    def __init__(self, sock: socket.socket, reader: Reader, sid: str) -> None:
        self.sock, self.reader, self.sid = sock, reader, sid
        self._lock = threading.Lock()
        self.closed = False

    def send(self, opcode: int, payload: bytes, *, rsv: int = 0) -> bool:
        """Send one frame; False (and the peer marked closed) when the socket is gone."""
        with self._lock:
            if self.closed:
                return False
            try:
                self.sock.sendall(encode_frame(opcode, payload, rsv=rsv))
            except OSError:
                self.closed = True
        return not self.closed

    def serve(self) -> None:
        """Answer pings and a close until the client leaves (the client sends nothing else)."""
        try:
            while not self.closed:
                opcode, data = read_frame(self.reader)
                if opcode == OP_PING:
                    self.send(OP_PONG, data)
                elif opcode == OP_CLOSE:
                    self.send(OP_CLOSE, data[:2])
                    break
        except (EOFError, OSError, ValueError):
            pass
        self.closed = True

    def drop(self) -> None:
        """Cut the TCP connection without a close frame: the client sees the socket lost."""
        with self._lock:
            self.closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
