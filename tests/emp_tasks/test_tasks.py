"""JobTask.apply_async: bad payloads and ctx are refused in the caller, however they are passed.

The tasks here are made on a Celery app of their own with kombu's in-memory transport, so what
is accepted is really published (and read back) without a broker server.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from connectors.errors import ConnectorError
from emp_tasks import tasks
from emp_tasks.config import services
from emp_tasks.tasks import JobTask, _make_task, job_arguments

GOOD = {"delay_ms": 0}
BAD = {"delay_ms": -1}
SECRET_CTX = {"storage": {"accountKey": "k"}}
CTX = {"prefix": "tenant-7/"}

# Every way a caller can hand a task its payload and ctx.
Call = Callable[[JobTask, Any, Any], Any]
CALLS: dict[str, Call] = {
    "delay-positional": lambda t, p, c: t.delay(p, c),
    "delay-keyword": lambda t, p, c: t.delay(p, ctx=c),
    "delay-all-keywords": lambda t, p, c: t.delay(payload=p, ctx=c),
    "apply_async-args": lambda t, p, c: t.apply_async((p, c)),
    "apply_async-args-and-kwargs": lambda t, p, c: t.apply_async((p,), {"ctx": c}),
    "apply_async-kwargs": lambda t, p, c: t.apply_async(kwargs={"payload": p, "ctx": c}),
    "signature": lambda t, p, c: t.s(p, c).apply_async(),
}


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    app = Celery("test-tasks", broker="memory://", set_as_current=False)
    # kombu's memory transport is one per process: a queue per test keeps tests apart.
    app.conf.task_default_queue = f"test-{uuid.uuid4().hex}"
    yield app
    app.close()


@pytest.fixture
def mock_task(memory_app: Celery) -> JobTask:
    return _make_task(services()["mock"], celery_app=memory_app)


def published(app: Celery) -> tuple[str, list[Any], dict[str, Any]]:
    """The one message on the default queue: (task name, args, kwargs)."""
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(app.conf.task_default_queue)
        message = queue.get(timeout=1)
        message.ack()
        assert queue.qsize() == 0
    args, kwargs, _ = message.payload
    return message.headers["task"], args, kwargs


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_ctx_carrying_credentials_is_refused_however_it_is_passed(
    call: Call, mock_task: JobTask
) -> None:
    with pytest.raises(ConnectorError) as refused:
        call(mock_task, GOOD, SECRET_CTX)
    assert refused.value.failure_type.value == "validation_error"
    assert refused.value.context["field"] == "ctx.storage.accountKey"


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_bad_payload_is_refused_however_it_is_passed(call: Call, mock_task: JobTask) -> None:
    with pytest.raises(ConnectorError) as refused:
        call(mock_task, BAD, None)
    assert refused.value.context["field"] == "delay_ms"


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_good_job_is_published_as_given(
    call: Call, mock_task: JobTask, memory_app: Celery
) -> None:
    call(mock_task, GOOD, CTX)
    name, args, kwargs = published(memory_app)
    assert name == "emp.mock"
    assert job_arguments(args, kwargs) == (GOOD, CTX)


def test_ctx_that_is_not_an_object_is_refused(mock_task: JobTask) -> None:
    with pytest.raises(ConnectorError) as refused:
        mock_task.delay(GOOD, "tenant-7")
    assert refused.value.context["field"] == "ctx"


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (None, None, (None, None)),
        ((GOOD,), None, (GOOD, None)),
        ((GOOD, CTX), None, (GOOD, CTX)),
        ((GOOD, CTX, {"m": 1}), {}, (GOOD, CTX)),
        ((GOOD,), {"ctx": CTX}, (GOOD, CTX)),
        ([GOOD, CTX], None, (GOOD, CTX)),  # a list, as a message's args arrive
        (None, {"payload": GOOD, "metadata": {"m": 1}}, (GOOD, None)),
        ((), {"payload": GOOD, "ctx": CTX}, (GOOD, CTX)),
    ],
)
def test_job_arguments_finds_payload_and_ctx(
    args: Any, kwargs: Any, expected: tuple[Any, Any]
) -> None:
    assert job_arguments(args, kwargs) == expected


def test_job_arguments_knows_the_order_of_every_task_s_parameters() -> None:
    for task in tasks.TASKS.values():
        assert tuple(inspect.signature(task.run).parameters) == tasks._PARAMETERS
