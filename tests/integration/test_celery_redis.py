"""Glif jobs through a real Celery worker, a real redis-server and the Glif emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import emp_tasks
from connectors.errors import ConnectorError
from emp_tasks import tasks
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import GlifEmulator
from tests.integration.conftest import TOKEN
from tests.integration.helpers import EventCollector, finish, provider_calls
from tests.integration.processes import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("redis_glif_worker")]

IMAGE = {"workflow_id": "sandbox-image", "inputs": ["a friendly oval robot"]}


@pytest.fixture
def collector() -> Iterator[EventCollector]:
    with EventCollector() as c:
        yield c


def test_success_ends_in_success_with_the_record_result_shape(glif_emulator: GlifEmulator) -> None:
    result = tasks.glif.delay(IMAGE)
    record = finish(result)
    assert result.state == "SUCCESS"
    assert record["status"] == "completed"
    assert record["attempts"] == 1
    body = record["result"]
    assert body["success"] is True
    assert body["data"]["content_type"] == "image"
    assert set(body["data"]["raw_response"]) == {"output", "outputFull", "price", "nodes"}
    assert isinstance(body["metadata"]["price"], float)
    assert body["metadata"]["workflow_id"] == "sandbox-image"
    assert body["metadata"]["attribution"] == "powered by glif.app"
    assert body["processing_time_ms"] >= 0
    assert len(provider_calls(glif_emulator)) == 1


def test_non_retryable_error_makes_one_provider_call_and_ends_failure(
    glif_emulator: GlifEmulator,
) -> None:
    glif_emulator.queue_faults(
        [Fault("insufficient_credits")], match={"workflow_id": "sandbox-text"}
    )
    result = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
    record = finish(result)
    assert result.state == "FAILURE"
    assert len(provider_calls(glif_emulator)) == 1
    error = result.result
    assert isinstance(error, ConnectorError)  # rebuilt from the JSON result backend
    assert (error.failure_type.value, error.failure_reason.value) == (
        "resource_limit",
        "insufficient_credits",
    )
    assert error.retryable is False
    assert record["error"]["failure_type"] == "resource_limit"
    assert record["attempts"] == 1


def test_retryable_error_makes_attempts_plus_one_calls_then_fails(
    glif_emulator: GlifEmulator,
) -> None:
    glif_emulator.queue_faults(
        [Fault("server_error", status=502)] * 4, match={"workflow_id": "sandbox-text"}
    )
    result = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
    record = finish(result, timeout=60)
    assert result.state == "FAILURE"
    assert len(provider_calls(glif_emulator)) == 3 + 1  # GLIF_RETRY_ATTEMPTS=3 retries
    assert record["attempts"] == 4
    assert record["error"]["failure_type"] == "service_error"
    assert record["error"]["retryable"] is True


def test_retry_after_is_honoured_before_the_next_call(glif_emulator: GlifEmulator) -> None:
    glif_emulator.queue_faults(
        [Fault("rate_limit", retry_after=1.5)], match={"workflow_id": "sandbox-text"}
    )
    result = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
    record = finish(result)
    calls = provider_calls(glif_emulator)
    assert record["status"] == "completed"
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].monotonic - calls[0].monotonic >= 1.5


def test_progress_is_visible_while_the_job_runs(glif_emulator: GlifEmulator) -> None:
    glif_emulator.queue_faults([Fault("slow", delay=1.5)], match={"workflow_id": "sandbox-text"})
    result = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
    seen: list[dict[str, Any]] = []
    while not result.ready():
        if result.state == "PROGRESS":
            seen.append(dict(result.info))
        time.sleep(0.05)
    assert seen, "no PROGRESS state observed"
    assert seen[0]["job_id"] == result.id
    assert 0 < seen[0]["progress"] < 100


def test_events_arrive_in_order_for_a_success(
    glif_emulator: GlifEmulator, collector: EventCollector
) -> None:
    glif_emulator.queue_faults([Fault("slow", delay=1.5)], match={"workflow_id": "sandbox-image"})
    result = tasks.glif.delay(IMAGE)
    finish(result)
    time.sleep(0.5)
    kinds = collector.for_job(result.id)
    ours = [k for k in kinds if k in ("update_job_progress", "complete_job", "fail_job")]
    assert ours[0] == "update_job_progress"
    assert ours[-1] == "complete_job"
    assert "fail_job" not in ours
    assert kinds.index("complete_job") < kinds.index("succeeded")


def test_events_arrive_in_order_for_a_retried_failure(
    glif_emulator: GlifEmulator, collector: EventCollector
) -> None:
    glif_emulator.queue_faults(
        [Fault("rate_limit", retry_after=0.2), Fault("invalid_workflow")],
        match={"workflow_id": "sandbox-json"},
    )
    result = emp_tasks.submit("glif", {"workflow_id": "sandbox-json", "inputs": []})
    finish(result)
    time.sleep(0.5)
    ours = [
        k for k in collector.for_job(result.id) if k in ("retry_job", "complete_job", "fail_job")
    ]
    assert ours == ["retry_job", "fail_job"]
    fail = next(e for e in collector.events if e["type"] == "task-fail_job")
    assert fail["failure_type"] == "validation_error"
    assert fail["attempts"] == 2
    assert fail["retryable"] is False


def test_malformed_payload_is_refused_at_submit(glif_emulator: GlifEmulator) -> None:
    with pytest.raises(ConnectorError, match="inputs"):
        tasks.glif.delay({"workflow_id": "sandbox-text", "inputs": [1, 2]})
    with pytest.raises(ConnectorError, match="workflow_id"):
        emp_tasks.submit("glif", {"inputs": ["x"]})
    assert provider_calls(glif_emulator) == []


def test_malformed_payload_sent_around_the_client_never_reaches_the_provider(
    glif_emulator: GlifEmulator,
) -> None:
    result = emp_tasks.app.send_task(
        "emp.glif", args=[{"workflow_id": "", "inputs": "x"}], queue="glif"
    )
    record = finish(result)
    assert record["status"] == "failed"
    assert record["error"]["failure_type"] == "validation_error"
    assert "workflow_id" in record["error"]["message"]
    assert provider_calls(glif_emulator) == []


def test_token_never_appears_in_results_events_or_logs(
    glif_emulator: GlifEmulator, collector: EventCollector, redis_glif_worker: WorkerProcess
) -> None:
    glif_emulator.queue_faults([Fault("auth_text")], match={"workflow_id": "sandbox-text"})
    ok = tasks.glif.delay(IMAGE)
    bad = emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]})
    finish(ok)
    finish(bad)
    time.sleep(0.5)
    exposed = [
        str(emp_tasks.job_record(ok.id)),
        str(emp_tasks.job_record(bad.id)),
        repr(bad.result),
        str(bad.result.to_dict()),
        str(collector.events),
        redis_glif_worker.text(),
    ]
    assert all(TOKEN not in text for text in exposed)


def test_a_bad_ctx_is_refused_before_any_provider_call(glif_emulator: GlifEmulator) -> None:
    with pytest.raises(ConnectorError, match=r"ctx\.storage\.accountKey"):
        emp_tasks.submit("glif", IMAGE, ctx={"storage": {"accountKey": "k"}})
    around = emp_tasks.app.send_task(
        "emp.glif", args=[IMAGE], kwargs={"ctx": {"bucket": "x"}}, queue="glif"
    )
    record = finish(around)
    assert record["error"]["failure_type"] == "validation_error"
    assert "ctx.bucket" in record["error"]["message"]
    assert provider_calls(glif_emulator) == []


def test_a_retry_after_beyond_the_cap_fails_at_once_and_says_so(
    glif_emulator: GlifEmulator,
) -> None:
    glif_emulator.queue_faults(
        [Fault("rate_limit", retry_after=3600)], match={"workflow_id": "sandbox-text"}
    )
    record = finish(emp_tasks.submit("glif", {"workflow_id": "sandbox-text", "inputs": ["x"]}))
    assert (record["status"], record["attempts"]) == ("failed", 1)
    assert "3600s, beyond the 300s retry cap" in record["error"]["message"]
    assert len(provider_calls(glif_emulator)) == 1
