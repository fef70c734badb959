"""Budget checks: refused at submit with nothing published; in the worker, before the call."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from celery import Celery

from connectors.cost import Cost
from connectors.errors import ConnectorError
from emp_tasks import budgets
from emp_tasks.config import ServiceSpec, services
from emp_tasks.runner import get_connector, run_job
from emp_tasks.spend import MemorySpend, store_for
from emp_tasks.tasks import _make_task
from tests.emp_tasks.fakes import FakeTask, ScriptedConnector

LIMITS = {"t-over": [{"limit": 1, "currency": "usd", "period": "day"}]}
PROMPT = {"prompt": "a happy horse"}
SPEC = ServiceSpec(
    name=ScriptedConnector.service_type,
    connector=f"{ScriptedConnector.__module__}:{ScriptedConnector.__name__}",
    queue="scripted",
    retry_attempts=2,
    retry_delay_seconds=1.0,
    timeout_seconds=5.0,
)


def calls() -> int:
    built = get_connector(SPEC)
    assert isinstance(built, ScriptedConnector)
    return built.calls


def fake_task() -> FakeTask:
    task = FakeTask()
    task.request.delivery_info = {}  # what a broker delivery carries
    return task


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> MemorySpend:
    caplog.set_level(logging.INFO, logger="emp_tasks.jobs")
    monkeypatch.setenv("EMP_BUDGETS", json.dumps(LIMITS))
    memory = MemorySpend()
    monkeypatch.setattr(budgets, "store_for", lambda app: memory)
    return memory


def test_a_tenant_at_its_limit_fails_before_the_provider_call(store: MemorySpend) -> None:
    budgets.charge(store, "t-over", Cost(amount=1, currency="usd", source="price_table"), _now())
    task = fake_task()
    before = calls()
    with pytest.raises(ConnectorError) as raised:
        run_job(task, SPEC, PROMPT, ctx={"tenant": "t-over"})
    error = raised.value
    assert (error.failure_reason.value, error.retryable) == ("budget_exceeded", False)
    assert calls() == before  # the connector was never called
    assert task.event_names == ["fail_job"]
    assert task.retries == []


def test_a_tenant_under_its_limit_runs_and_its_result_says_what_it_cost(
    store: MemorySpend,
) -> None:
    before = calls()
    result = run_job(fake_task(), SPEC, PROMPT, ctx={"tenant": "t-over"})
    assert calls() == before + 1
    assert result["metadata"]["cost"] is None  # the scripted provider reports no usage


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    app = Celery("test-budgets", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = f"test-{uuid.uuid4().hex}"  # one in-memory queue per test
    yield app
    app.close()


def queued(app: Celery) -> int:
    with app.connection_for_read() as conn:
        return int(conn.SimpleQueue(app.conf.task_default_queue).qsize())


def test_a_tenant_at_its_limit_is_refused_at_submit_and_nothing_is_published(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    limits = {tenant: [{"limit": 1, "currency": "usd", "period": "day"}]}
    monkeypatch.setenv("EMP_BUDGETS", json.dumps(limits))
    task = _make_task(services()["mock"], celery_app=memory_app)
    ctx = {"tenant": tenant}
    task.delay({"delay_ms": 0}, ctx)  # nothing spent yet
    assert queued(memory_app) == 1
    # No Redis or SQL results here: the app's store is this process's own.
    spent = Cost(amount=1, currency="usd", source="price_table")
    budgets.charge(store_for(memory_app), tenant, spent, _now())
    with pytest.raises(ConnectorError) as refused:
        task.delay({"delay_ms": 0}, ctx)
    assert refused.value.failure_reason.value == "budget_exceeded"
    assert queued(memory_app) == 1
    # Celery's own retry publishes through apply_async too; the worker checks it instead.
    task.apply_async(({"delay_ms": 0}, ctx), retries=1)
    assert queued(memory_app) == 2
