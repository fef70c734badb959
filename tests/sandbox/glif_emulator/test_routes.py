"""The Glif emulator's Simple API over loopback HTTP: routes, auth, body parsing, inputs."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from emp_tasks.sandbox.glif import GlifEmulator
from tests.sandbox.glif_emulator.support import TOKEN, run

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
