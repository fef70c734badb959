"""`simulation` and named Glif workflows through one real `emp-tasks worker` on the test Redis.

The worker serves `simulation,glif` against the Glif emulator; its environment names the
logo-maker workflow's id (`GLIF_LOGO_MAKER_WORKFLOW_ID`), which this test process does not set:
the worker, not the submitter, decides which workflow a named job calls.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emp_tasks
from connectors.services.simulation import SimulationPayload, plan_attempt, simulation_rng
from emp_tasks import tasks
from emp_tasks.sandbox.glif import GlifEmulator
from tests.conftest import REDIS_URL
from tests.integration.conftest import glif_env
from tests.integration.helpers import EventCollector, finish, provider_calls
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = pytest.mark.integration

LOGO_DEFAULTS = {"node_6": "a minimalist flat vector logo, white background"}


@pytest.fixture(scope="module")
def simulation_worker(
    redis_server: RedisServer, glif_emulator: GlifEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    tmp = Path(tmp_path_factory.mktemp("simulation"))
    env = glif_env(
        glif_emulator,
        EMP_BROKER_URL=REDIS_URL,
        EMP_RESULT_BACKEND=REDIS_URL.replace("/0", "/1"),
        GLIF_LOGO_MAKER_WORKFLOW_ID="sandbox-image",
        SIMULATION_MAX_RETRIES="2",
        SIMULATION_RETRY_DELAY_SECONDS="0.1",
    )
    argv = [console_script("emp-tasks"), "worker", "--service", "simulation,glif"]
    worker = WorkerProcess(env, tmp / "worker.log", argv=argv, cwd=tmp).start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def collector(simulation_worker: WorkerProcess) -> Iterator[EventCollector]:
    with EventCollector() as events:
        yield events


def job_events(collector: EventCollector, job_id: str) -> list[dict[str, Any]]:
    """The job's own events (ours, not Celery's), once the last of them has had time to land."""
    time.sleep(0.3)
    ours = ("task-update_job_progress", "task-retry_job", "task-complete_job", "task-fail_job")
    return [e for e in collector.events if e.get("uuid") == job_id and e["type"] in ours]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("task-") for e in events]


def progress(events: list[dict[str, Any]]) -> list[float]:
    return [e["progress"] for e in events if e["type"] == "task-update_job_progress"]


@pytest.mark.parametrize(
    ("miss", "final_update_sent"),
    [(False, True), (True, False)],
    ids=["with-final-update", "missed-final-update"],
)
def test_a_simulated_job_reports_progress_and_completes(
    collector: EventCollector, miss: bool, final_update_sent: bool
) -> None:
    payload = {"duration_ms": 1500, "steps": 5, "missed_final_update": miss, "seed": 3}
    result = emp_tasks.submit("simulation", payload)
    record = finish(result)
    events = job_events(collector, result.id)
    assert record["status"] == "completed"
    assert record["attempts"] == 1
    assert record["result"]["data"]["final_update_sent"] is final_update_sent
    assert kinds(events)[-1] == "complete_job"
    seen = progress(events)
    assert seen, "no progress event"
    # Completion is the outcome: 100 % is complete_job's own (progress 100), never a progress
    # event, so a missed final update shows in the result alone.
    assert all(0 <= value < 100 for value in seen)
    assert events[-1]["progress"] == 100


@pytest.mark.parametrize(
    ("failure", "status", "attempts", "retried"),
    [
        ({"failure_type": "auth_error", "failure_reason": "expired_token"}, "failed", 1, 0),
        ({"failure_type": "generation_refusal"}, "failed", 1, 0),
        ({"failure_type": "system_error", "failure_reason": "config_error"}, "failed", 1, 0),
        ({"failure_type": "service_error"}, "failed", 3, 2),  # retried until attempts are spent
        ({"failure_type": "rate_limit", "retry_after_seconds": 0.2}, "failed", 3, 2),
        (
            {"failure_type": "network_error", "failure_rate": 0, "fail_attempts": 1},
            "completed",
            2,
            1,
        ),
    ],
    ids=["auth", "refusal", "config", "service-error", "rate-limit", "transient"],
)
def test_a_simulated_failure_fails_or_retries_as_the_taxonomy_says(
    collector: EventCollector,
    failure: dict[str, Any],
    status: str,
    attempts: int,
    retried: int,
) -> None:
    payload = {"duration_ms": 0, "steps": 1, "failure_rate": 1, **failure}
    result = emp_tasks.submit("simulation", payload)
    record = finish(result)
    events = job_events(collector, result.id)
    assert record["status"] == status
    assert record["attempts"] == attempts
    assert kinds(events).count("retry_job") == retried
    assert kinds(events)[-1] == ("complete_job" if status == "completed" else "fail_job")
    if status == "failed":
        assert record["error"]["failure_type"] == failure["failure_type"]
        assert record["error"]["retryable"] is (retried > 0)


def expected_outcome(payload: dict[str, Any], job_id: str, max_attempts: int) -> tuple[str, int]:
    """What a seeded job must come to, decided here with the connector's own pure functions."""
    model = SimulationPayload.model_validate(payload)
    for attempt in range(1, max_attempts + 1):
        rng = simulation_rng(model.seed, job_id, attempt)
        if not plan_attempt(model, rng, attempt).fails:
            return "completed", attempt
    return "failed", max_attempts


def test_a_seeded_job_ends_in_the_worker_as_its_seed_decides(
    simulation_worker: WorkerProcess,
) -> None:
    payload = {"duration_ms": 0, "steps": 1, "failure_rate": 0.5, "seed": 11}
    ids = [f"seeded-{uuid.uuid4().hex[:8]}-{n}" for n in range(8)]
    jobs = [emp_tasks.submit("simulation", payload, job_id=job_id) for job_id in ids]
    got = [(r["status"], r["attempts"]) for r in map(finish, jobs)]
    assert got == [expected_outcome(payload, job_id, 3) for job_id in ids]


@pytest.mark.parametrize(
    "submit",
    [
        lambda: emp_tasks.submit("logo-maker", {"inputs": {"prompt": "an owl"}}),
        lambda: tasks.glif.delay({"workflow": "logo-maker", "inputs": {"prompt": "an owl"}}),
    ],
    ids=["as-service", "as-workflow-field"],
)
def test_a_named_glif_workflow_reaches_glif_with_its_id_and_merged_inputs(
    simulation_worker: WorkerProcess, glif_emulator: GlifEmulator, submit: Any
) -> None:
    record = finish(submit())
    assert record["status"] == "completed"
    assert record["service"] == "glif"
    assert record["result"]["metadata"]["workflow_id"] == "sandbox-image"
    [call] = provider_calls(glif_emulator)
    assert call.body_json["id"] == "sandbox-image"  # the worker's GLIF_LOGO_MAKER_WORKFLOW_ID
    assert call.body_json["inputs"] == {**LOGO_DEFAULTS, "prompt": "an owl"}
