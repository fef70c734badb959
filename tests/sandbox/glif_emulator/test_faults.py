"""The Glif emulator's fault injection: queued and header faults, shapes, delays, resets."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.glif import GLIF_FAULT_KINDS, GlifEmulator
from tests.sandbox.glif_emulator.support import AUTH, run

HTTP_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
JSON_CT = "application/json"
HTML_CT = "text/html; charset=utf-8"

FAULT_TABLE: list[tuple[dict[str, Any], int, str | None, Any, dict[str, str]]] = [
    # (fault, status, content type, body (dict = JSON, str = text), expected headers)
    ({"kind": "rate_limit"}, 429, JSON_CT, {"error": "Too many requests"}, {"Retry-After": "1"}),
    (
        {"kind": "rate_limit", "retry_after": 2.5, "retry_after_ms": 2500},
        429,
        JSON_CT,
        {"error": "Too many requests"},
        {"Retry-After": "2.5", "retry-after-ms": "2500"},
    ),
    (
        {"kind": "rate_limit", "retry_after": HTTP_DATE},
        429,
        JSON_CT,
        {"error": "Too many requests"},
        {"Retry-After": HTTP_DATE},
    ),
    (
        {"kind": "server_error"},
        500,
        HTML_CT,
        "<html><body><h1>500 Internal Server Error</h1></body></html>",
        {},
    ),
    (
        {"kind": "server_error", "status": 502},
        502,
        HTML_CT,
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        {},
    ),
    ({"kind": "empty_error"}, 503, None, "", {}),
    ({"kind": "empty_error", "status": 504, "retry_after": 3}, 504, None, "", {"Retry-After": "3"}),
    (
        {"kind": "unauthorized"},
        401,
        JSON_CT,
        {"error": "Unauthorized: invalid or missing API token"},
        {},
    ),
    (
        {"kind": "forbidden"},
        403,
        JSON_CT,
        {"error": "Forbidden: this token may not run this glif"},
        {},
    ),
    ({"kind": "non_json"}, 200, HTML_CT, "<html>Service temporarily unavailable</html>", {}),
    ({"kind": "workflow_error"}, 200, JSON_CT, {"error": "Workflow execution failed"}, {}),
    (
        {"kind": "workflow_error", "message": "Node 3 exploded"},
        200,
        JSON_CT,
        {"error": "Node 3 exploded"},
        {},
    ),
    (
        {"kind": "invalid_workflow"},
        200,
        JSON_CT,
        {"error": "Invalid workflow ID: sandbox-text"},
        {},
    ),
    (
        {"kind": "insufficient_credits"},
        200,
        JSON_CT,
        {"error": "Insufficient credits: this run needs 2.1 credits, you have 0.3"},
        {},
    ),
    (
        {"kind": "rate_limit_text"},
        200,
        JSON_CT,
        {"error": "Rate limit exceeded, try again later"},
        {},
    ),
    ({"kind": "auth_text"}, 200, JSON_CT, {"error": "Authentication failed: invalid token"}, {}),
    ({"kind": "timeout_text"}, 200, JSON_CT, {"error": "Workflow run timed out after 300s"}, {}),
    (
        {"kind": "rate_limit", "body": {"error": {"code": "custom"}}, "headers": {"X-Why": "test"}},
        429,
        JSON_CT,
        {"error": {"code": "custom"}},
        {"X-Why": "test", "Retry-After": "1"},
    ),
]


def _check_fault_response(
    response: requests.Response,
    status: int,
    content_type: str | None,
    body: Any,
    headers: dict[str, str],
) -> None:
    assert response.status_code == status
    assert response.headers.get("Content-Type") == content_type
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert (response.json() if isinstance(body, dict) else response.text) == body
    for name, value in headers.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    ("fault", "status", "content_type", "body", "headers"),
    FAULT_TABLE,
    ids=[f"{row[0]['kind']}-{i}" for i, row in enumerate(FAULT_TABLE)],
)
def test_queued_fault_produces_its_response(
    glif: GlifEmulator,
    http: requests.Session,
    fault: dict[str, Any],
    status: int,
    content_type: str | None,
    body: Any,
    headers: dict[str, str],
) -> None:
    queued = http.post(
        f"{glif.url}/_sandbox/faults",
        timeout=5,
        json={"faults": [fault], "match": {"workflow_id": "sandbox-text"}},
    )
    assert queued.json() == {"queued": 1, "pending": 1}
    _check_fault_response(run(http, glif), status, content_type, body, headers)
    assert run(http, glif).status_code == 200  # one-shot: the next call is normal


@pytest.mark.parametrize(
    ("header", "status", "content_type", "body", "headers"),
    [
        (
            "rate_limit;retry_after=7",
            429,
            JSON_CT,
            {"error": "Too many requests"},
            {"Retry-After": "7"},
        ),
        (
            "server_error;status=503",
            503,
            HTML_CT,
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
            {},
        ),
        ("timeout_text", 200, JSON_CT, {"error": "Workflow run timed out after 300s"}, {}),
    ],
)
def test_header_fault_produces_its_response(
    glif: GlifEmulator,
    http: requests.Session,
    header: str,
    status: int,
    content_type: str | None,
    body: Any,
    headers: dict[str, str],
) -> None:
    response = run(http, glif, headers={"X-Sandbox-Fault": header})
    _check_fault_response(response, status, content_type, body, headers)


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("missing_output_full", lambda d: "outputFull" not in d and "output" in d),
        ("price_number", lambda d: d["price"] == 0.0325),
        ("lowercase_type", lambda d: d["outputFull"]["type"] == "text"),
    ],
)
def test_shape_faults_alter_an_otherwise_normal_success(
    glif: GlifEmulator, http: requests.Session, kind: str, check: Any
) -> None:
    response = run(http, glif, headers={"X-Sandbox-Fault": kind})
    assert response.status_code == 200
    assert check(response.json())


def test_reset_fault_aborts_the_connection_and_server_survives(
    glif: GlifEmulator, http: requests.Session
) -> None:
    glif.queue_faults([{"kind": "reset"}])
    with pytest.raises(requests.ConnectionError):
        run(http, glif)
    assert run(http, glif).status_code == 200
    first = glif.calls()[0]
    assert first.status is None
    assert first.extra["fault"] == "reset"


def test_slow_fault_delays_then_answers_normally(
    glif: GlifEmulator, http: requests.Session
) -> None:
    started = time.monotonic()
    response = run(http, glif, headers={"X-Sandbox-Fault": "slow;delay=0.3"})
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert "output" in response.json()


def test_delay_param_also_delays_error_faults(glif: GlifEmulator, http: requests.Session) -> None:
    started = time.monotonic()
    assert run(http, glif, headers={"X-Sandbox-Fault": "rate_limit;delay=0.2"}).status_code == 429
    assert time.monotonic() - started >= 0.2


def test_global_latency_slows_every_provider_call() -> None:
    with GlifEmulator(latency=0.2) as slow:
        started = time.monotonic()
        assert requests.post(f"{slow.url}/sandbox-text", headers=AUTH, timeout=5).ok
        assert time.monotonic() - started >= 0.2


def test_queue_matches_workflow_and_keeps_fifo_order(
    glif: GlifEmulator, http: requests.Session
) -> None:
    glif.queue_faults(
        [{"kind": "rate_limit"}, {"kind": "server_error"}], match={"workflow_id": "sandbox-text"}
    )
    assert run(http, glif, "sandbox-json").status_code == 200
    statuses = [run(http, glif).status_code for _ in range(3)]
    assert statuses == [429, 500, 200]


def test_unmatched_fault_applies_to_any_workflow(
    glif: GlifEmulator, http: requests.Session
) -> None:
    glif.queue_faults([{"kind": "forbidden"}])
    assert run(http, glif, "sandbox-json").status_code == 403


def test_header_fault_wins_and_keeps_the_queued_one(
    glif: GlifEmulator, http: requests.Session
) -> None:
    glif.queue_faults([{"kind": "rate_limit"}])
    assert run(http, glif, headers={"X-Sandbox-Fault": "forbidden"}).status_code == 403
    assert run(http, glif).status_code == 429


@pytest.mark.parametrize("header", ["no_such_kind", "rate_limit;retry_after=-1", "x;bad"])
def test_invalid_fault_header_is_400(
    glif: GlifEmulator, http: requests.Session, header: str
) -> None:
    response = run(http, glif, headers={"X-Sandbox-Fault": header})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Invalid X-Sandbox-Fault header")


@pytest.mark.parametrize(
    "body",
    [
        {"faults": [{"kind": "no_such_kind"}]},
        {"faults": "rate_limit"},
        {"faults": [1]},
        {"faults": [], "match": ["x"]},
        [1],
        {"faults": [{"kind": "slow", "delay": "1"}]},
    ],
)
def test_control_plane_rejects_bad_fault_requests(glif: GlifEmulator, body: Any) -> None:
    response = requests.post(f"{glif.url}/_sandbox/faults", json=body, timeout=5)
    assert response.status_code == 400
    assert "error" in response.json()
    assert len(glif.faults) == 0


def test_every_fault_kind_is_known_to_the_emulator() -> None:
    tested = {row[0]["kind"] for row in FAULT_TABLE}
    tested |= {"missing_output_full", "price_number", "lowercase_type", "reset", "slow"}
    assert tested == GLIF_FAULT_KINDS
