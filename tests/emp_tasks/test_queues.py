"""Queue shapes per broker, and the delivery-limit setting."""

from __future__ import annotations

import pytest

from connectors.errors import ConnectorError
from emp_tasks.config import load_services
from emp_tasks.queues import (
    BROKER_DELIVERY_LIMIT,
    broker_countdown,
    dead_letter_queues,
    delivery_limit,
    is_amqp,
    service_queues,
)

SPECS = list(load_services(env={}).values())


@pytest.mark.parametrize(
    ("url", "amqp"),
    [
        ("amqp://guest@host//", True),
        ("amqps://host//", True),
        ("pyamqp://host//", True),
        ("redis://host/0", False),
        ("filesystem://localhost/", False),
    ],
)
def test_only_amqp_urls_get_quorum_queues(url: str, amqp: bool) -> None:
    assert is_amqp(url) is amqp
    queue = service_queues(SPECS, url)[0]
    assert ((queue.queue_arguments or {}).get("x-queue-type") == "quorum") is amqp


def test_amqp_queues_are_quorum_on_a_topic_exchange_with_dead_letters() -> None:
    queues = {q.name: q for q in service_queues(SPECS, "amqp://host//")}
    glif = queues["glif"]
    assert (glif.exchange.name, glif.exchange.type, glif.routing_key) == (
        "emp.jobs",
        "topic",
        "glif",
    )
    assert glif.queue_arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": BROKER_DELIVERY_LIMIT,
        "x-dead-letter-exchange": "emp.dead",
        "x-dead-letter-routing-key": "glif",
    }
    assert set(queues) == {spec.queue for spec in SPECS}  # dead letters are not consumed


def test_the_webhooks_queue_has_the_same_shape_so_its_retries_wait_in_the_broker() -> None:
    queues = {q.name: q for q in service_queues(SPECS, "amqp://host//", extra=["webhooks"])}
    hooks = queues["webhooks"]
    assert (hooks.exchange.name, hooks.routing_key) == ("emp.jobs", "webhooks")
    assert (hooks.queue_arguments or {})["x-queue-type"] == "quorum"
    assert set(queues) == {spec.queue for spec in SPECS} | {"webhooks"}


def test_each_service_has_a_dead_letter_queue_bound_by_its_queue_name() -> None:
    dead = {q.name: q for q in dead_letter_queues(SPECS)}
    assert dead["glif.dead"].routing_key == "glif"
    assert dead["glif.dead"].exchange.name == "emp.dead"
    assert len(dead) == len(SPECS)


@pytest.mark.parametrize(("raw", "limit"), [(None, 3), ("", 3), ("1", 1), ("19", 19)])
def test_delivery_limit_defaults_to_three(raw: str | None, limit: int) -> None:
    assert delivery_limit({} if raw is None else {"EMP_DELIVERY_LIMIT": raw}) == limit


@pytest.mark.parametrize("raw", ["0", "20", "three", "-1", "2.5"])
def test_a_delivery_limit_outside_one_to_nineteen_names_the_setting(raw: str) -> None:
    with pytest.raises(ConnectorError, match="EMP_DELIVERY_LIMIT must be a whole number"):
        delivery_limit({"EMP_DELIVERY_LIMIT": raw})


@pytest.mark.parametrize(
    ("countdown", "url", "held"),
    [
        (0.2, "amqp://host//", 1.0),  # native delayed delivery refuses under a second
        (0.0, "pyamqp://host//", 1.0),
        (7.5, "amqp://host//", 7.5),
        (0.2, "redis://host/0", 0.2),  # an ETA in Redis holds any countdown
        (0.0, "filesystem://localhost/", 0.0),
    ],
)
def test_a_countdown_is_floored_at_a_second_only_on_rabbitmq(
    countdown: float, url: str, held: float
) -> None:
    assert broker_countdown(countdown, url) == held
