"""What the Glif emulator tests share: the sandbox token, a POST helper, a strict PNG reader."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import requests

from emp_tasks.sandbox.glif import GlifEmulator
from emp_tasks.sandbox.png import PNG_SIGNATURE

__all__ = ["AUTH", "REPO_ROOT", "TOKEN", "decode_png", "run"]

TOKEN = "sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO_ROOT = Path(__file__).resolve().parents[3]


def run(
    http: requests.Session, glif: GlifEmulator, wf_id: str = "sandbox-text", **kwargs: Any
) -> requests.Response:
    """POST /<id> with optional inputs/headers/params."""
    return http.post(f"{glif.url}/{wf_id}", timeout=5, **kwargs)


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of an 8-bit RGB PNG, checking every chunk CRC."""
    assert data.startswith(PNG_SIGNATURE)
    pos, chunks = len(PNG_SIGNATURE), []
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos : pos + 8])
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(tag + payload) & 0xFFFFFFFF == crc
        chunks.append((tag, payload))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (8, 2)
    return width, height, zlib.decompress(b"".join(p for t, p in chunks if t == b"IDAT"))
