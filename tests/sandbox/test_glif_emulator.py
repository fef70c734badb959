"""The Glif emulator over real loopback HTTP: routes, inputs, outputs, faults, control plane."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.glif import CATALOG, GLIF_FAULT_KINDS, GlifEmulator, Workflow
from emp_tasks.sandbox.png import PNG_SIGNATURE, read_png_size

TOKEN = "sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[GlifEmulator]:
    with GlifEmulator(tokens=(TOKEN,)) as emulator:
        yield emulator


@pytest.fixture
def glif(server: GlifEmulator) -> GlifEmulator:
    server.reset()  # each test starts with an empty call log and fault queue
    return server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


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


# -- routes, auth, body parsing --------------------------------------------------------


def test_post_root_with_id_in_body_returns_documented_shape(
    glif: GlifEmulator, http: requests.Session
) -> None:
    body = {"id": "sandbox-text", "inputs": ["hi"], "visibility": "PUBLIC"}
    response = http.post(glif.url, json=body, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert set(data) == {"id", "inputs", "output", "outputFull", "price", "nodes"}
    assert data["id"] == "sandbox-text"
    assert data["inputs"] == {"prompt": "hi"}
    assert data["outputFull"] == {"type": "TEXT", "value": data["output"]}
    assert isinstance(data["price"], str)
    assert float(data["price"]) > 0
    assert data["nodes"][0] == {"name": "prompt", "type": "TextInputBlock", "output": "hi"}
    assert data["nodes"][-1]["output"] == data["output"]


def test_post_with_id_in_path_needs_only_inputs(glif: GlifEmulator, http: requests.Session) -> None:
    data = run(http, glif, json={"inputs": {"prompt": "path"}}).json()
    assert data["id"] == "sandbox-text"
    assert data["inputs"] == {"prompt": "path"}


def test_body_without_content_type_is_parsed(glif: GlifEmulator, http: requests.Session) -> None:
    response = http.post(glif.url, data=b'{"id": "sandbox-text", "inputs": ["raw"]}', timeout=5)
    assert "Content-Type" not in response.request.headers
    assert response.json()["inputs"] == {"prompt": "raw"}


def test_empty_body_on_path_route_uses_defaults(glif: GlifEmulator, http: requests.Session) -> None:
    assert run(http, glif, "sandbox-json").json()["inputs"] == {"topic": "robots", "count": "3"}


def test_legacy_singular_input_is_accepted(glif: GlifEmulator, http: requests.Session) -> None:
    data = http.post(glif.url, json={"id": "sandbox-text", "input": ["old"]}, timeout=5).json()
    assert data["inputs"] == {"prompt": "old"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "wrong-token", "wrong-scheme", "empty-token"],
)
def test_missing_or_invalid_token_is_401(glif: GlifEmulator, headers: dict[str, str]) -> None:
    response = requests.post(f"{glif.url}/sandbox-text", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized: invalid or missing API token"}


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe\x00"])
def test_malformed_or_non_object_body_is_400(
    glif: GlifEmulator, http: requests.Session, body: bytes
) -> None:
    response = http.post(glif.url, data=body, timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid JSON body"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/sandbox-text", 405), ("PUT", "/", 405), ("POST", "/a/b", 404)],
)
def test_non_simple_api_routes_are_rejected(
    glif: GlifEmulator, http: requests.Session, method: str, path: str, status: int
) -> None:
    assert http.request(method, glif.url + path, timeout=5).status_code == status


# -- inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "resolved"),
    [
        (["a"], {"prompt": "a", "style": "watercolor"}),
        (["a", "b", "ignored-extra"], {"prompt": "a", "style": "b"}),
        ({"style": "ink"}, {"prompt": "a friendly oval robot", "style": "ink"}),
        ({"prompt": "p", "style": "s", "unknown": "x"}, {"prompt": "p", "style": "s"}),
        (None, {"prompt": "a friendly oval robot", "style": "watercolor"}),
    ],
    ids=["positional-partial", "positional-extra", "named-partial", "named-extra", "none"],
)
def test_inputs_resolve_by_position_or_block_name_with_defaults(
    glif: GlifEmulator, http: requests.Session, inputs: Any, resolved: dict[str, str]
) -> None:
    assert run(http, glif, "sandbox-image", json={"inputs": inputs}).json()["inputs"] == resolved


@pytest.mark.parametrize("inputs", [["ok", 3], {"prompt": True}, [None], "bare string"])
def test_non_string_inputs_are_200_with_error(
    glif: GlifEmulator, http: requests.Session, inputs: Any
) -> None:
    response = run(http, glif, json={"inputs": inputs})
    assert response.status_code == 200
    assert response.json()["error"].startswith("Invalid input:")


def test_strict_mode_rejects_missing_inputs(glif: GlifEmulator, http: requests.Session) -> None:
    response = run(http, glif, "sandbox-image", json={"inputs": ["a"]}, params={"strict": "1"})
    assert response.status_code == 200
    assert response.json() == {"error": "Not enough inputs provided (strict mode)"}


def test_strict_mode_accepts_complete_inputs(glif: GlifEmulator, http: requests.Session) -> None:
    response = run(http, glif, "sandbox-image", json={"inputs": ["a", "b"]}, params={"strict": "1"})
    assert response.json()["inputs"] == {"prompt": "a", "style": "b"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"inputs": []}, "Missing glif id"),
        ({"id": "nope", "inputs": []}, "Glif not found: nope"),
        ({"id": "sandbox-text", "visibility": "SECRET"}, "Invalid visibility"),
    ],
)
def test_bad_workflow_requests_are_200_with_error(
    glif: GlifEmulator, http: requests.Session, body: dict[str, Any], error: str
) -> None:
    response = http.post(glif.url, json=body, timeout=5)
    assert response.status_code == 200
    assert response.json()["error"].startswith(error)


# -- outputs --------------------------------------------------------------------------


@pytest.mark.parametrize("wf_id", ["sandbox-image", "clgh1vxtu0011mo081dplq3xs"])
def test_image_output_is_a_real_png_served_by_the_emulator(
    glif: GlifEmulator, http: requests.Session, wf_id: str
) -> None:
    data = run(http, glif, wf_id, json={"inputs": ["a robot"]}).json()
    full, wf = data["outputFull"], CATALOG[wf_id]
    assert full["type"] == "IMAGE"
    assert full["value"] == data["output"]
    assert (full["width"], full["height"]) == (wf.width, wf.height)
    assert data["output"].startswith(f"{glif.url}/_files/")
    assert data["output"].endswith(".png")
    image = requests.get(data["output"], timeout=5)
    assert image.headers["Content-Type"] == "image/png"
    assert int(image.headers["Content-Length"]) == len(image.content)
    width, height, raw = decode_png(image.content)
    assert (width, height) == read_png_size(image.content) == (wf.width, wf.height)
    assert len(raw) == height * (1 + 3 * width)


def test_image_alias_uses_the_documented_block_name(
    glif: GlifEmulator, http: requests.Session
) -> None:
    data = http.post(
        glif.url,
        json={"id": "clgh1vxtu0011mo081dplq3xs", "inputs": ["a friendly oval robot"]},
        timeout=5,
    ).json()
    assert data["inputs"] == {"node_6": "a friendly oval robot"}


def test_outputs_are_deterministic_in_the_inputs(
    glif: GlifEmulator, http: requests.Session
) -> None:
    first = run(http, glif, "sandbox-image", json={"inputs": ["same"]}).json()["output"]
    again = run(http, glif, "sandbox-image", json={"inputs": ["same"]}).json()["output"]
    other = run(http, glif, "sandbox-image", json={"inputs": ["different"]}).json()["output"]
    assert first == again != other
    assert requests.get(first, timeout=5).content != requests.get(other, timeout=5).content


@pytest.mark.parametrize(
    ("wf_id", "content_type", "magic"),
    [
        ("sandbox-audio", "audio/mpeg", b"ID3"),
        ("sandbox-video", "video/mp4", b"\x00\x00\x00\x18ftypmp42"),
    ],
)
def test_media_outputs_are_served_with_type_and_magic(
    glif: GlifEmulator, http: requests.Session, wf_id: str, content_type: str, magic: bytes
) -> None:
    data = run(http, glif, wf_id).json()
    assert data["outputFull"]["type"] == CATALOG[wf_id].output_type
    media = requests.get(data["output"], timeout=5)
    assert media.headers["Content-Type"] == content_type
    assert media.content.startswith(magic)
    assert len(media.content) > 1000


@pytest.mark.parametrize(
    ("wf_id", "check"),
    [
        ("sandbox-text", lambda out: "hello" in out),
        ("sandbox-json", lambda out: json.loads(out)["items"] == ["hello #1", "hello #2"]),
        ("sandbox-html", lambda out: out.startswith("<html>") and "<h1>hello</h1>" in out),
    ],
)
def test_text_like_outputs_are_strings_derived_from_inputs(
    glif: GlifEmulator, http: requests.Session, wf_id: str, check: Any
) -> None:
    inputs = {"prompt": "hello", "topic": "hello", "count": "2", "title": "hello"}
    data = run(http, glif, wf_id, json={"inputs": inputs}).json()
    assert isinstance(data["output"], str)
    assert check(data["output"])
    assert data["outputFull"] == {"type": CATALOG[wf_id].output_type, "value": data["output"]}


def test_catalog_covers_every_output_type() -> None:
    types = {wf.output_type for wf in CATALOG.values()}
    assert types == {"IMAGE", "TEXT", "JSON", "HTML", "AUDIO", "VIDEO"}
    assert all(isinstance(wf, Workflow) and wf.inputs for wf in CATALOG.values())


# -- faults ---------------------------------------------------------------------------

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


# -- control plane, call log, files, transport ------------------------------------------


def test_control_plane_lists_faults_and_reset_clears_state(
    glif: GlifEmulator, http: requests.Session
) -> None:
    glif.queue_faults([{"kind": "slow", "delay": 1}], match={"workflow_id": "x"})
    run(http, glif)
    pending = requests.get(f"{glif.url}/_sandbox/faults", timeout=5).json()
    assert pending == [{"fault": {"kind": "slow", "delay": 1.0}, "match": {"workflow_id": "x"}}]
    assert requests.post(f"{glif.url}/_sandbox/reset", timeout=5).json() == {"ok": True}
    assert glif.calls() == []
    assert len(glif.faults) == 0
    assert requests.get(f"{glif.url}/_sandbox/nope", timeout=5).status_code == 404


def test_call_log_records_requests_but_not_control_calls(
    glif: GlifEmulator, http: requests.Session
) -> None:
    run(
        http,
        glif,
        "sandbox-image",
        json={"inputs": ["x"]},
        params={"strict": "1"},
        headers={"X-Trace": "t1"},
    )
    requests.post(f"{glif.url}/sandbox-text", headers={"Authorization": "Bearer bad"}, timeout=5)
    calls = requests.get(f"{glif.url}/_sandbox/calls", timeout=5).json()
    assert [c["path"] for c in calls] == ["/sandbox-image", "/sandbox-text"]
    first, second = calls
    assert first["method"] == "POST"
    assert first["query"] == {"strict": "1"}
    assert first["body_json"] == {"inputs": ["x"]}
    assert first["status"] == 200
    assert first["headers"]["x-trace"] == "t1"
    assert first["kind"] == "provider"
    assert first["extra"] == {
        "workflow_id": "sandbox-image",
        "error": "Not enough inputs provided (strict mode)",
    }
    assert (first["auth_present"], first["auth_valid"]) == (True, True)
    assert (second["auth_present"], second["auth_valid"], second["status"]) == (True, False, 401)
    assert second["monotonic"] >= first["monotonic"]
    assert first["wall_time"] > 1e9


def test_call_log_never_contains_token_values(glif: GlifEmulator) -> None:
    secrets = ["sandbox-token", "super-secret-wrong-token"]
    for secret in secrets:
        requests.post(
            f"{glif.url}/sandbox-text",
            timeout=5,
            params={"key": secret},
            headers={"Authorization": f"Bearer {secret}", "X-Api-Key": secret},
        )
    dumped = requests.get(f"{glif.url}/_sandbox/calls", timeout=5).text
    dumped += json.dumps([c.to_dict() for c in glif.calls()])
    assert not any(secret in dumped for secret in secrets)
    assert [c.auth_valid for c in glif.calls()] == [True, False]


def test_calls_filter_by_path_prefix_and_log_file_downloads(
    glif: GlifEmulator, http: requests.Session
) -> None:
    url = run(http, glif, "sandbox-image").json()["output"]
    requests.get(url, timeout=5)
    assert [c.kind for c in glif.calls("/_files/")] == ["file"]
    assert [c.path for c in glif.calls("/sandbox")] == ["/sandbox-image"]


def test_unknown_file_is_404(glif: GlifEmulator) -> None:
    assert requests.get(f"{glif.url}/_files/missing.png", timeout=5).status_code == 404


def test_blob_streams_exactly_the_requested_size(glif: GlifEmulator) -> None:
    size = 3 * 1024 * 1024 + 17
    url = f"{glif.url}/_files/blob?size={size}&type=image/webp&seed=s1"
    with requests.get(url, stream=True, timeout=5) as response:
        assert response.headers["Content-Type"] == "image/webp"
        assert int(response.headers["Content-Length"]) == size
        received = sum(len(chunk) for chunk in response.iter_content(256 * 1024))
    assert received == size
    again = requests.get(f"{glif.url}/_files/blob?size=1000&seed=s1", timeout=5)
    assert again.content == requests.get(url, stream=True, timeout=5).raw.read(1000)
    assert again.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("query", ["size=-1", "size=abc", "size=99999999999999"])
def test_blob_rejects_bad_sizes(glif: GlifEmulator, query: str) -> None:
    assert requests.get(f"{glif.url}/_files/blob?{query}", timeout=5).status_code == 400


def test_keep_alive_serves_many_requests_on_one_connection(glif: GlifEmulator) -> None:
    conn = HTTPConnection("127.0.0.1", glif.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("POST", "/sandbox-text", body=b"{}", headers=AUTH)
            response = conn.getresponse()
            assert response.status == 200
            assert response.version == 11
            assert json.loads(response.read())["id"] == "sandbox-text"
    finally:
        conn.close()


def test_handler_crash_answers_500_and_server_keeps_serving() -> None:
    class Broken(GlifEmulator):
        def run_workflow(self, wf: Workflow, inputs: dict[str, str]) -> dict[str, Any]:
            raise RuntimeError("boom")

    with Broken() as broken:
        response = requests.post(f"{broken.url}/sandbox-text", headers=AUTH, timeout=5)
        assert response.status_code == 500
        assert response.json() == {"error": "Sandbox internal error"}
        assert [c.status for c in broken.calls()] == [500]
        assert requests.get(f"{broken.url}/_sandbox/calls", timeout=5).status_code == 200


def test_stop_releases_the_port() -> None:
    emulator = GlifEmulator().start()
    url = emulator.url
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sandbox/calls", timeout=2)


def test_cli_prints_url_serves_and_exits_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "emp_tasks.sandbox",
        "glif",
        "--port",
        "0",
        "--token",
        "cli-token",
    ]
    proc = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = requests.post(
            f"{url}/sandbox-text", timeout=5, headers={"Authorization": "Bearer cli-token"}
        )
        assert response.json()["id"] == "sandbox-text"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
