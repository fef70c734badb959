"""connectors.testing: the public scripted transport, as a connector author would use it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

import connectors.testing as testing
from connectors.testing import (
    FakeAdapter,
    Reply,
    body_json,
    empty_reply,
    fake_session,
    html_reply,
    json_reply,
    text_reply,
)


def test_session_replays_the_script_in_order_and_records_what_was_sent() -> None:
    session, adapter = fake_session(json_reply({"id": "r-1"}, 201), text_reply("done"))
    first = session.post("https://api.test/jobs", json={"prompt": "a horse"}, timeout=(1, 2))
    second = session.get("https://api.test/jobs/r-1", headers={"X-Trace": "t"})
    assert (first.status_code, first.json(), first.reason) == (201, {"id": "r-1"}, "Created")
    assert (second.text, second.headers["content-type"]) == ("done", "text/plain")
    assert body_json(adapter.requests[0]) == {"prompt": "a horse"}
    assert (adapter.last.headers["X-Trace"], adapter.last_url) == ("t", "https://api.test/jobs/r-1")
    assert adapter.timeouts == [(1, 2), None]


def test_a_scripted_exception_is_raised_by_the_session() -> None:
    session, adapter = fake_session(requests.ConnectTimeout("slow"))
    with pytest.raises(requests.ConnectTimeout, match="slow"):
        session.get("https://api.test/")
    assert len(adapter.requests) == 1


def test_a_request_beyond_the_script_fails_naming_it() -> None:
    session, adapter = fake_session()
    with pytest.raises(AssertionError, match=r"unexpected request GET https://api.test/x"):
        session.get("https://api.test/x")
    adapter.add(empty_reply(204))
    assert session.get("https://api.test/x").status_code == 204


@pytest.mark.parametrize(
    ("reply", "status", "content_type", "reason"),
    [
        (json_reply([1], 429, {"Retry-After": "3"}), 429, "application/json", "Too Many Requests"),
        (html_reply("<h1>502</h1>", 502), 502, "text/html; charset=utf-8", "Bad Gateway"),
        (text_reply("x", content_type="text/csv"), 200, "text/csv", "OK"),
        (empty_reply(599), 599, None, ""),
        (Reply(500, b"", reason="Custom"), 500, None, "Custom"),
    ],
    ids=["json", "html", "text", "unnamed_status", "own_reason"],
)
def test_reply_helpers_build_the_response_they_name(
    reply: Reply, status: int, content_type: str | None, reason: str
) -> None:
    response = reply.build(requests.Request("GET", "https://api.test/").prepare())
    assert (response.status_code, response.headers.get("Content-Type"), response.reason) == (
        status,
        content_type,
        reason,
    )


def test_no_request_yet_and_no_body_are_assertion_errors() -> None:
    adapter = FakeAdapter()
    with pytest.raises(AssertionError, match="no request"):
        _ = adapter.last
    with pytest.raises(AssertionError, match="no text body"):
        body_json(requests.Request("GET", "https://api.test/").prepare())


def test_module_exports_what_it_lists_and_works_without_pytest() -> None:
    assert all(hasattr(testing, name) for name in testing.__all__)
    code = "import sys, connectors.testing; sys.exit('pytest' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
