"""split_lines: NDJSON's line splitter, LF only, across arbitrary network reads."""

from __future__ import annotations

import inspect

import pytest

from connectors.protocol.framing import split_lines


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"a\nb\n"], [(b"a", True), (b"b", True)]),
        ([b"a", b"b\nc", b"\n"], [(b"ab", True), (b"c", True)]),
        ([b"a\nlast"], [(b"a", True), (b"last", False)]),
        ([b"a\n", b""], [(b"a", True)]),
        ([b""], []),
        ([b"\n\n"], [(b"", True), (b"", True)]),
        # A CR is data: CRLF leaves it on the line, a lone CR ends nothing.
        ([b"a\r\n"], [(b"a\r", True)]),
        ([b"a\rb\n"], [(b"a\rb", True)]),
        ([b"a\r", b"\nb"], [(b"a\r", True), (b"b", False)]),
    ],
    ids=[
        "two",
        "split_reads",
        "unended_last",
        "empty_read",
        "nothing",
        "blanks",
        "crlf",
        "lone_cr",
        "crlf_split",
    ],
)
def test_split_lines_ends_lines_at_lf_only(
    chunks: list[bytes], lines: list[tuple[bytes, bool]]
) -> None:
    assert list(split_lines(chunks)) == lines


def test_split_lines_has_no_cr_mode_for_sse() -> None:
    # SSE framing (a lone CR ends a line) is sseclient-py's; a second one here went unused.
    assert list(inspect.signature(split_lines).parameters) == ["chunks"]
