"""Tiny, dependency-free PNG writer and reader for sandbox outputs.

The emulators hand out *real* image files so that downstream code (asset savers, content
sniffing, thumbnailers) is exercised for real. Images are deterministic: the same seed
string and size always give byte-identical files, so tests can compare digests.

The picture is a diagonal gradient between two seed-derived colours with a darker
checkerboard overlay - cheap to compute in pure Python and visibly seed-dependent.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

__all__ = ["PNG_SIGNATURE", "make_png", "read_png_size"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 4096  # keeps a single pure-Python image well under a second to build

_COLOR_TYPE_RGB = 2
_BIT_DEPTH = 8


def _chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data, CRC over tag+data."""
    crc = zlib.crc32(tag + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)


def _palette(start: bytes, end: bytes, shade: int) -> list[bytes]:
    """256 RGB triples blending ``start`` into ``end``, scaled by ``shade``/4."""
    colours = []
    for t in range(256):
        pairs = zip(start, end, strict=True)
        colours.append(bytes((a * (255 - t) + b * t) // 255 * shade // 4 for a, b in pairs))
    return colours


def _scanlines(seed: str, width: int, height: int) -> bytes:
    """Raw image data: each row is filter byte 0 followed by RGB pixels."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    light = _palette(digest[0:3], digest[3:6], 4)
    dark = _palette(digest[0:3], digest[3:6], 3)
    cell = 8 + digest[6] % 24
    span = max(1, width + height - 2)
    rows = []
    for y in range(height):
        row_cell = y // cell
        pixels = (
            (light if (x // cell + row_cell) % 2 == 0 else dark)[(x + y) * 255 // span]
            for x in range(width)
        )
        rows.append(b"\x00" + b"".join(pixels))
    return b"".join(rows)


def make_png(seed: str, width: int = 256, height: int = 256) -> bytes:
    """A valid 8-bit RGB PNG of ``width`` x ``height`` pixels, deterministic in ``seed``."""
    for name, side in (("width", width), ("height", height)):
        if not 1 <= side <= MAX_SIDE:
            raise ValueError(f"PNG {name} must be between 1 and {MAX_SIDE}, got {side}")
    header = struct.pack(">IIBBBBB", width, height, _BIT_DEPTH, _COLOR_TYPE_RGB, 0, 0, 0)
    # Level 6 trades little size for speed; the files are small either way.
    pixels = zlib.compress(_scanlines(seed, width, height), 6)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def read_png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; raises ValueError if the header is not PNG."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33:
        raise ValueError("not a PNG file")
    length, tag = struct.unpack(">I4s", data[8:16])
    if tag != b"IHDR" or length != 13:
        raise ValueError("PNG does not start with an IHDR chunk")
    crc = struct.unpack(">I", data[29:33])[0]
    if zlib.crc32(data[12:29]) & 0xFFFFFFFF != crc:
        raise ValueError("PNG IHDR checksum mismatch")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)
