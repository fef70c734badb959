"""`emp-tasks submit` before anything is queued: what is refused input and what is not.

Refusals never reach a broker, so they run in-process; the misconfigured-broker case runs the
command in a fresh interpreter, since the broker URL is read when the Celery app is loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from emp_tasks.cli import main
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def submit(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["submit", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize(
    "payload_json",
    ["{", "", "{'delay_ms': 0}", "[1,", "1" * 5000],
    ids=["unclosed", "empty", "single-quotes", "truncated", "number-too-long"],
)
def test_text_that_is_not_json_is_refused_as_such(payload_json: str) -> None:
    code, record = submit("mock", payload_json)
    assert code == 2
    assert record["status"] == "refused"
    assert record["error"]["failure_reason"] == "invalid_format"
    assert record["error"]["message"].startswith("PAYLOAD_JSON is not valid JSON")


@pytest.mark.parametrize(
    ("service", "payload_json", "words"),
    [
        ("mock", '{"delay_ms": -1}', "'delay_ms'"),
        ("mock", '{"colour": "red"}', "'colour'"),
        ("mock", "[1, 2]", "'payload'"),
        ("nope", "{}", "Unknown service 'nope'"),
    ],
    ids=["bad-field", "unknown-field", "not-an-object", "unknown-service"],
)
def test_json_that_cannot_succeed_is_refused_naming_what_is_wrong(
    service: str, payload_json: str, words: str
) -> None:
    code, record = submit(service, payload_json)
    assert code == 2
    assert record["status"] == "refused"
    assert words in record["error"]["message"]
    assert "not valid JSON" not in record["error"]["message"]


def run_with_broker(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMP_BROKER_URL": url, "EMP_RESULT_BACKEND": url}
    return subprocess.run(
        [sys.executable, "-m", "emp_tasks.cli", "submit", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_value_error_below_submit_is_not_reported_as_bad_json() -> None:
    # kombu raises ValueError for the port it cannot parse: a setting of this machine, not the
    # caller's payload, so not "refused input" (exit 2) and not "not valid JSON".
    done = run_with_broker("redis://127.0.0.1:notaport/0", "mock", "{}", "--json")
    assert done.returncode == 1, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "failed"
    assert record["error"]["message"] == (
        "ValueError: Port could not be cast to integer value as 'notaport'"
    )
    assert (record["error"]["failure_type"], record["error"]["retryable"]) == (
        "system_error",
        False,
    )


def test_without_json_the_failure_is_one_line_on_stderr() -> None:
    done = run_with_broker("redis://127.0.0.1:notaport/0", "mock", "{}")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "failed: ValueError: Port could not be cast to integer value as 'notaport'"
    )


@pytest.mark.parametrize(
    ("ctx_json", "reason", "words"),
    [
        ("{", "invalid_format", "--ctx is not valid JSON"),
        ("[1]", None, "ctx"),
        ('{"tenant": "not a tenant!"}', None, "ctx.tenant"),
        ('{"api_key": "sk-live-123"}', None, "credentials do not belong in a job"),
    ],
    ids=["not-json", "not-an-object", "bad-tenant", "a-secret"],
)
def test_a_ctx_that_cannot_succeed_is_refused_naming_what_is_wrong(
    ctx_json: str, reason: str | None, words: str
) -> None:
    code, record = submit("mock", '{"delay_ms": 0}', "--ctx", ctx_json)
    assert code == 2
    assert record["status"] == "refused"
    assert words in record["error"]["message"]
    if reason:
        assert record["error"]["failure_reason"] == reason
    assert "sk-live-123" not in json.dumps(record)


def test_a_spend_store_that_cannot_be_reached_is_a_failure_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A port nothing listens on: the budget check cannot read the tenant's spend.
    monkeypatch.setenv(
        "EMP_BUDGETS", json.dumps({"team-z": [{"limit": 5, "currency": "usd", "period": "day"}]})
    )
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run_with_broker(
        url, "mock", '{"delay_ms": 0}', "--ctx", '{"tenant": "team-z"}', "--json"
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "failed"
    assert record["error"]["failure_type"] == "network_error"
