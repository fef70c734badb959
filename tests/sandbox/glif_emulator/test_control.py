"""The Glif emulator's control plane, call log, file serving, transport and CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from http.client import HTTPConnection
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.glif import GlifEmulator, Workflow
from tests.sandbox.glif_emulator.support import AUTH, REPO_ROOT, run


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
