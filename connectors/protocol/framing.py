"""Stream decoders for the streaming mode: a body's bytes, as they arrive, into payloads.

`SSEDecoder` parses with sseclient-py; `NDJSONDecoder` splits lines itself. Both tell a whole
last frame from one the connection cut: sseclient-py dispatches whatever is buffered when the
bytes stop, so `_Tracked` watches the raw stream, and an event dispatched only after the bytes
ran out without a closing blank line is not an event but a cut (`StreamCut`, retryable) - as is
an NDJSON last line that lacks its newline and does not parse. One leading UTF-8 BOM is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sseclient import SSEClient

from connectors.errors import Classification, FailureReason, FailureType

__all__ = [
    "BOM",
    "STREAM_END",
    "NDJSONDecoder",
    "SSEDecoder",
    "SSEEvent",
    "StreamCut",
    "StreamDecoder",
    "split_lines",
]

_NOT_JSON = Classification(FailureType.RESPONSE_ERROR, FailureReason.INVALID_RESPONSE_FORMAT)

BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark


class _StreamEnd:
    """The type of STREAM_END."""

    def __repr__(self) -> str:
        return "STREAM_END"


# What a decoder yields when it reads its framing's terminal marker (SSE `[DONE]`, an NDJSON
# object with its done key set); the mode stops reading there.
STREAM_END = _StreamEnd()


class StreamCut(Exception):
    """The bytes stopped inside a frame (an SSE event, an NDJSON line): the stream was cut."""


class StreamDecoder(Protocol):
    """Turns a streamed body's bytes into payloads, yielding STREAM_END at a terminal marker."""

    @property
    def end_required(self) -> bool:
        """True when a stream without the terminal marker was cut short."""

    def events(self, chunks: Iterable[bytes]) -> Iterator[Any]:
        """Decoded payloads in order; a malformed frame raises a ConnectorError, and a frame
        the stream's end cut short raises StreamCut."""


@dataclass(frozen=True)
class SSEEvent:
    """One Server-Sent Event: its `event:` name ("message" when absent) and parsed JSON data."""

    event: str
    data: Any
    id: str | None = None


class _Tracked:
    """Passes chunks through, dropping a leading BOM, and records how the bytes ended."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.exhausted = False
        self.tail = b""  # the last bytes seen, enough to recognise an event's closing blank line

    def __iter__(self) -> Iterator[bytes]:
        head: bytes | None = b""  # held until 3 bytes came: a BOM split across reads still goes
        for chunk in self._chunks:
            if head is not None and len(head + chunk) < len(BOM):
                head += chunk
                continue
            if head is not None:
                chunk, head = (head + chunk).removeprefix(BOM), None
            yield from self._pass(chunk)
        if head:
            yield from self._pass(head.removeprefix(BOM))
        self.exhausted = True

    def _pass(self, chunk: bytes) -> Iterator[bytes]:
        if chunk:
            self.tail = (self.tail + chunk)[-4:]
            yield chunk

    def ended_cleanly(self) -> bool:
        return self.tail.endswith((b"\n\n", b"\r\r", b"\r\n\r\n")) or not self.tail


@dataclass(frozen=True)
class SSEDecoder:
    """Server-Sent Events through sseclient-py, yielding an SSEEvent with each event's JSON."""

    done_marker: str | None = "[DONE]"  # OpenAI Chat Completions; Gemini and Responses send none
    end_required: bool = False  # True for APIs that always send done_marker

    def events(self, chunks: Iterable[bytes]) -> Iterator[Any]:
        tracked = _Tracked(chunks)
        for event in SSEClient(iter(tracked)).events():
            if tracked.exhausted and not tracked.ended_cleanly():
                # sseclient-py flushes its buffer at the end of the bytes; a spec-conforming
                # client discards that unterminated event, and a finite response ending there
                # was cut short.
                raise StreamCut("cut mid-event")
            if self.done_marker is not None and event.data.startswith(self.done_marker):
                yield STREAM_END
                return
            yield SSEEvent(event.event, _parse_json(event.data, "an SSE data field"), event.id)


@dataclass(frozen=True)
class NDJSONDecoder:
    """Newline-delimited JSON (Ollama): one JSON value per line, blank lines skipped."""

    done_key: str | None = None  # e.g. "done": an object with it true is the stream's last

    @property
    def end_required(self) -> bool:
        return self.done_key is not None

    def events(self, chunks: Iterable[bytes]) -> Iterator[Any]:
        for line, ended in split_lines(chunks):
            text = line.strip()
            if not text:
                continue
            if not ended and not _is_json(text):
                raise StreamCut("cut mid-line")  # the last line, its newline never came
            # Strict: bytes that are not UTF-8 raise, as they do in SSEDecoder, rather than
            # reaching the result as replacement characters.
            value = _parse_json(text.decode("utf-8"), "a line")
            yield value
            if self.done_key and isinstance(value, dict) and value.get(self.done_key) is True:
                yield STREAM_END
                return


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise _NOT_JSON.error(
            f"Stream sent {what} that is not JSON: {text[:200]!r}", context={"frame": text}
        ) from None


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too: a character cut in half
        return False
    return True


def split_lines(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each line without its LF, and whether the LF arrived (only the last line can lack it).

    A CR is data here (NDJSON strips it with the other whitespace); SSE framing, where a lone CR
    ends a line, is sseclient-py's. A final piece without an end is yielded unless empty.
    """
    # The pieces of an unfinished line are joined once it ends: re-splitting a growing buffer
    # would cost quadratic time on a long line (a base64 image) arriving in small reads.
    pieces: list[bytes] = []
    for chunk in chunks:
        first, *rest = chunk.split(b"\n")
        pieces.append(first)
        if rest:
            yield b"".join(pieces), True
            *complete, last = rest
            for line in complete:
                yield line, True
            pieces = [last]
    if any(pieces):
        yield b"".join(pieces), False
