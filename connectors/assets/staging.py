"""Stage an output for upload: a rewound file plus its size, SHA-256 and first bytes.

Large content goes through a SpooledTemporaryFile, hashed and size-checked while it is written,
so a 200 MB output never sits whole in memory. Base64 text is decoded in slices for the same
reason. Every source is held to ASSET_MAX_BYTES.
"""

from __future__ import annotations

import binascii
import errno
import hashlib
import io
import re
import tempfile
from dataclasses import dataclass
from types import TracebackType
from typing import IO
from urllib.parse import unquote_to_bytes

from connectors.assets.base import SERVICE
from connectors.errors import (
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    validation_error,
)

__all__ = [
    "HEAD_BYTES",
    "SPOOL_BYTES",
    "ContentSink",
    "StagedContent",
    "disk_error",
    "stage_base64",
    "stage_bytes",
    "too_large",
]

HEAD_BYTES = 512  # enough for every magic-byte rule, including the WebM doctype
SPOOL_BYTES = 8 * 1024 * 1024  # beyond this a staged output rolls over to a temp file on disk
_B64_SLICE = 4 * 1024 * 1024  # a multiple of 4, so each slice decodes on its own
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_SPACE = re.compile(r"\s")


@dataclass
class StagedContent:
    """Content ready to upload: `file` is rewound; size, digest and head are already known."""

    file: IO[bytes]
    size: int
    sha256: str
    head: bytes
    declared_mime: str | None = None
    name_hint: str | None = None

    def __enter__(self) -> StagedContent:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.file.close()


def too_large(max_bytes: int, what: str = "asset") -> ConnectorError:
    """The non-retryable error for content over ASSET_MAX_BYTES."""
    return Classification(FailureType.VALIDATION_ERROR, FailureReason.INVALID_PAYLOAD, False).error(
        f"The {what} exceeds ASSET_MAX_BYTES ({max_bytes} bytes)",
        service=SERVICE,
        context={"max_bytes": max_bytes, "refusal": "size"},
    )


def disk_error(exc: OSError, action: str) -> ConnectorError:
    """Classify a local-disk failure: full disk (retryable), no permission (config), other."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # Another worker (or this one, later) may have the space.
        found = Classification(FailureType.RESOURCE_LIMIT, FailureReason.DISK_SPACE_FULL, True)
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        found = Classification(FailureType.SYSTEM_ERROR, FailureReason.CONFIG_ERROR, False)
    else:
        found = Classification(FailureType.SYSTEM_ERROR, FailureReason.INTERNAL_ERROR, True)
    return found.error(f"Cannot {action}: {exc.strerror or exc}", service=SERVICE)


class ContentSink:
    """Collects streamed chunks into a spooled file, hashing and enforcing the size cap."""

    def __init__(self, max_bytes: int, *, what: str = "asset") -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._what = what
        self._hash = hashlib.sha256()
        self._head = b""
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raises the size error before the cap is crossed."""
        if self.size + len(chunk) > self.max_bytes:
            raise too_large(self.max_bytes, self._what)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
        self._hash.update(chunk)
        try:
            self._file.write(chunk)
        except OSError as exc:
            raise disk_error(exc, "stage the asset on local disk") from exc
        self.size += len(chunk)

    def finish(
        self, declared_mime: str | None = None, name_hint: str | None = None
    ) -> StagedContent:
        """Rewind and hand over the staged content (the sink must not be used afterwards)."""
        self._file.seek(0)
        return StagedContent(
            self._file, self.size, self._hash.hexdigest(), self._head, declared_mime, name_hint
        )

    def discard(self) -> None:
        """Drop whatever was written (after a failure)."""
        self._file.close()


def stage_bytes(data: bytes, max_bytes: int, declared_mime: str | None = None) -> StagedContent:
    """Stage bytes already in memory (BytesIO shares the buffer; nothing is copied)."""
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    digest = hashlib.sha256(data).hexdigest()
    return StagedContent(io.BytesIO(data), len(data), digest, data[:HEAD_BYTES], declared_mime)


def _split_data_url(text: str) -> tuple[str | None, str, bool]:
    header, sep, body = text[5:].partition(",")
    if not sep:
        raise validation_error("data", "data: URL has no ',' before its content", service=SERVICE)
    params = header.split(";")
    return (params[0] or None), body, "base64" in (p.strip().lower() for p in params[1:])


def stage_base64(text: str, max_bytes: int) -> StagedContent:
    """Stage raw base64 (standard or URL-safe) or a `data:` URL, decoding slice by slice."""
    declared: str | None = None
    if text[:5].lower() == "data:":
        declared, text, is_base64 = _split_data_url(text)
        if not is_base64:  # a percent-encoded data URL (rare, small by nature)
            return stage_bytes(unquote_to_bytes(text), max_bytes, declared)
    if _SPACE.search(text):
        text = "".join(text.split())  # MIME base64 wraps lines; the slices need none
    if len(text) // 4 * 3 > max_bytes + 3:
        raise too_large(max_bytes)
    sink = ContentSink(max_bytes)
    try:
        for start in range(0, len(text), _B64_SLICE):
            last = start + _B64_SLICE >= len(text)
            sink.write(_decode_slice(text[start : start + _B64_SLICE], last))
    except BaseException:
        sink.discard()
        raise
    return sink.finish(declared)


def _decode_slice(piece: str, last: bool) -> bytes:
    raw = piece.encode("ascii", errors="replace").translate(_URLSAFE)
    if last:
        raw += b"=" * (-len(raw) % 4)  # producers often drop the padding
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        raise validation_error("data", "is not valid base64", service=SERVICE) from None
