"""`emp-tasks worker --webhooks`: the webhooks queue, alone or beside services."""

from __future__ import annotations

import base64

import pytest

from emp_tasks.pools import PlanError, webhook_plan, with_webhooks
from emp_tasks.webhooks import QUEUE
from emp_tasks.worker_cmd import make_plan, webhook_complaint

SECRET = "whsec_" + base64.b64encode(b"worker-test-webhook-key-0123456").decode()


def test_webhooks_alone_is_a_threads_worker_on_the_webhooks_queue() -> None:
    specs, plan = make_plan((), False, True)
    assert specs == []
    assert (plan.queues, plan.pool, plan.concurrency) == ((QUEUE,), "threads", 10)
    argv = plan.celery_argv("info")
    assert argv[argv.index("-Q") + 1] == QUEUE


def test_webhooks_beside_a_service_share_its_slots_and_say_so() -> None:
    specs, plan = make_plan(("mock",), False, True)
    assert [spec.name for spec in specs] == ["mock"]
    assert plan.queues == ("mock", QUEUE)
    assert any("also delivers webhooks" in note for note in plan.notes)
    assert with_webhooks(plan) == plan  # once only


def test_a_service_worker_without_the_flag_does_not_consume_webhooks() -> None:
    _, plan = make_plan(("mock",), False, False)
    assert QUEUE not in plan.queues


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"pool": "fibers"}, "--pool"),
        ({"concurrency": 0}, "--concurrency"),
    ],
)
def test_a_webhooks_only_plan_refuses_bad_options(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(PlanError, match=says):
        webhook_plan(**kwargs)  # type: ignore[arg-type]


def test_autoscale_is_refused_for_a_webhooks_only_worker() -> None:
    with pytest.raises(PlanError, match="--autoscale"):
        make_plan((), False, True, autoscale="4,1")


def test_a_webhooks_worker_needs_the_secret_and_valid_settings() -> None:
    assert "EMP_WEBHOOK_SECRET is not set" in webhook_complaint({})
    bad = {"EMP_WEBHOOK_SECRET": SECRET, "EMP_WEBHOOK_RETRY_DELAYS": "later"}
    assert "EMP_WEBHOOK_RETRY_DELAYS" in webhook_complaint(bad)
    assert webhook_complaint({"EMP_WEBHOOK_SECRET": SECRET}) == ""
