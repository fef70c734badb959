"""Cost and budgets through a real worker, redis-server and the Glif and OpenAI emulators.

One worker (concurrency 1, so a second job waits while the first runs) serves glif and
openai_text with EMP_BUDGETS set; this process, the client, has the same setting. Tenants are
named per run, so spend left in the session's Redis by another run cannot matter.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery.result import AsyncResult

import emp_tasks
from connectors.errors import ConnectorError
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.glif import CATALOG, GlifEmulator
from emp_tasks.sandbox.openai import OpenAIEmulator
from emp_tasks.spend import store_for
from tests.conftest import REDIS_URL
from tests.integration.conftest import OPENAI_KEY, glif_env
from tests.integration.helpers import finish, provider_calls
from tests.integration.processes import RedisServer, WorkerProcess, console_script

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("budget_worker")]

RUN = uuid.uuid4().hex[:8]
SPENDER, CAPPED, QUEUED, CHATTER = (f"{name}-{RUN}" for name in ("spend", "cap", "queued", "chat"))
IMAGE_PRICE = float(CATALOG["sandbox-image"].price)  # 2.1000875 credits
TEXT_PRICE = float(CATALOG["sandbox-text"].price)  # 0.0325
BUDGETS = json.dumps(
    {
        SPENDER: [{"limit": 100, "currency": "glif_credits", "period": "day"}],
        CAPPED: [{"limit": 2, "currency": "glif_credits", "period": "day"}],
        QUEUED: [{"limit": 2, "currency": "glif_credits", "period": "month"}],
    }
)


@pytest.fixture(scope="module")
def budget_worker(
    redis_server: RedisServer,
    glif_emulator: GlifEmulator,
    openai_emulator: OpenAIEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    env = glif_env(
        glif_emulator,
        EMP_BROKER_URL=REDIS_URL,
        EMP_RESULT_BACKEND=REDIS_URL.replace("/0", "/1"),
        EMP_BUDGETS=BUDGETS,
        OPENAI_API_KEY=OPENAI_KEY,
        OPENAI_BASE_URL=f"{openai_emulator.url}/v1",
    )
    log = Path(tmp_path_factory.mktemp("budget-worker")) / "worker.log"
    worker = WorkerProcess(env, log, queues="glif,openai_text", concurrency=1, name="budgets")
    yield worker.start()
    worker.stop()


@pytest.fixture(autouse=True)
def _client_budgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMP_BUDGETS", BUDGETS)  # submit checks them in this process


def glif_job(tenant: str, workflow: str = "sandbox-text", **options: str) -> AsyncResult:
    payload = {"workflow_id": workflow, "inputs": [f"{tenant} {uuid.uuid4().hex[:6]}"]}
    return emp_tasks.submit("glif", payload, ctx={"tenant": tenant}, **options)


def spend_json(tenant: str) -> dict[tuple[str, str], dict[str, object]]:
    out = subprocess.run(
        [console_script("emp-tasks"), "spend", "--tenant", tenant, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    lines = json.loads(out)["spend"]
    return {(str(line["currency"]), str(line["period"])): line for line in lines}


def test_cost_is_in_the_result_and_spend_adds_up_across_jobs(glif_emulator: GlifEmulator) -> None:
    records = [finish(glif_job(SPENDER)) for _ in range(2)]
    for record in records:
        assert record["status"] == "completed"
        assert record["result"]["metadata"]["cost"] == {
            "amount": TEXT_PRICE,
            "currency": "glif_credits",
            "source": "provider",
        }
    shown = spend_json(SPENDER)
    for period in ("day", "month"):
        assert shown[("glif_credits", period)]["amount"] == pytest.approx(2 * TEXT_PRICE)
    assert shown[("glif_credits", "day")]["limit"] == 100
    assert len(provider_calls(glif_emulator)) == 2


def test_a_tenant_at_its_limit_is_refused_at_submit(glif_emulator: GlifEmulator) -> None:
    assert finish(glif_job(CAPPED, "sandbox-image"))["status"] == "completed"  # 2.1 of 2
    job_id = f"refused-{RUN}"
    with pytest.raises(ConnectorError) as caught:
        glif_job(CAPPED, job_id=job_id)
    error = caught.value
    assert (error.failure_type.value, error.failure_reason.value) == (
        "resource_limit",
        "budget_exceeded",
    )
    assert error.retryable is False
    assert error.context["spent"] == pytest.approx(IMAGE_PRICE)
    time.sleep(0.5)  # a job that had been queued would have started by now
    assert redis.Redis.from_url(REDIS_URL).llen("glif") == 0
    assert AsyncResult(job_id, app=emp_tasks.app).state == "PENDING"  # never ran
    assert len(provider_calls(glif_emulator)) == 1
    # Another tenant, and the same tenant's jobs billed in another currency (usd), still run.
    assert finish(glif_job(SPENDER))["status"] == "completed"
    chat = emp_tasks.submit("openai_text", {"prompt": "still fine"}, ctx={"tenant": CAPPED})
    assert finish(chat)["status"] == "completed"


def test_a_queued_job_fails_before_its_call_once_the_limit_is_reached(
    glif_emulator: GlifEmulator,
) -> None:
    # The first job is slow; the second waits in the queue behind it (one worker slot), both
    # accepted while the tenant has spent nothing. The first completes and reaches the limit.
    glif_emulator.queue_faults([Fault("slow", delay=1.0)], match={"workflow_id": "sandbox-image"})
    first = glif_job(QUEUED, "sandbox-image")
    second = glif_job(QUEUED, "sandbox-image")
    assert finish(first)["status"] == "completed"
    record = finish(second)
    assert (record["status"], record["attempts"]) == ("failed", 1)
    assert record["error"]["failure_reason"] == "budget_exceeded"
    assert record["error"]["retryable"] is False
    assert len(provider_calls(glif_emulator)) == 1  # the second job never called Glif
    assert spend_json(QUEUED)[("glif_credits", "month")]["amount"] == pytest.approx(IMAGE_PRICE)


def test_openai_cost_comes_from_usage_and_a_billed_refusal_records_its_own(
    openai_emulator: OpenAIEmulator,
) -> None:
    ctx = {"tenant": CHATTER}
    record = finish(emp_tasks.submit("openai_text", {"prompt": "hello fox"}, ctx=ctx))
    assert record["status"] == "completed"
    usage = record["result"]["data"]["usage"]
    expected = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.6) / 1e6
    cost = record["result"]["metadata"]["cost"]
    assert (cost["currency"], cost["source"]) == ("usd", "price_table")
    assert cost["amount"] == pytest.approx(expected)

    openai_emulator.queue_faults([Fault("refusal")], match={"prompt": "refuse me"})
    refused = emp_tasks.submit("openai_text", {"prompt": "refuse me"}, ctx=ctx)
    assert finish(refused)["status"] == "failed"
    error = refused.result
    assert isinstance(error, ConnectorError)
    assert error.failure_type.value == "generation_refusal"
    assert error.context["cost"]["source"] == "price_table"
    spent = {row.period: row.amount for row in store_for(emp_tasks.app).rows(CHATTER)}
    total = expected + error.context["cost"]["amount"]
    assert spent == {"day": pytest.approx(total), "month": pytest.approx(total)}
