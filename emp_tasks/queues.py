"""The broker-side shape of each service's queue: plain on Redis, quorum with dead letters on AMQP.

On RabbitMQ every service queue is a quorum queue (replicated, redelivered when a consumer's
connection drops) with an explicit `x-delivery-limit`: a job that kills its worker on every
delivery is failed by emp_tasks.deliveries after EMP_DELIVERY_LIMIT deliveries, and should that
count be unavailable, dead-lettered by the broker to `<queue>.dead` instead of looping forever.
The queues sit on a topic exchange, which is what Celery's native delayed delivery needs: a
retry's countdown is then kept by the broker (the `celery_delayed_*` exchanges), not as an ETA
message in a worker's memory. Redis and the embedded filesystem broker get plain queues.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from connectors.errors import configuration_error
from emp_tasks.config import ServiceSpec

__all__ = [
    "BROKER_DELIVERY_LIMIT",
    "DEAD_LETTER_EXCHANGE",
    "DEFAULT_DELIVERY_LIMIT",
    "JOB_EXCHANGE",
    "broker_countdown",
    "dead_letter_queues",
    "declare_dead_letter_queues",
    "delivery_limit",
    "is_amqp",
    "service_queues",
]

JOB_EXCHANGE = Exchange("emp.jobs", type="topic")
DEAD_LETTER_EXCHANGE = Exchange("emp.dead", type="topic")
DEFAULT_DELIVERY_LIMIT = 3
# The broker's own limit, a backstop for when deliveries cannot be counted (the result backend
# is down). A queue's arguments are fixed when it is declared - a changed value would make every
# later declaration fail - so it is a constant, not EMP_DELIVERY_LIMIT.
BROKER_DELIVERY_LIMIT = 20


def is_amqp(broker_url: str) -> bool:
    """Whether the broker is RabbitMQ (AMQP), where queues are quorum queues."""
    return broker_url.startswith(("amqp://", "amqps://", "pyamqp://"))


def broker_countdown(countdown: float, broker_url: str) -> float:
    """A retry's countdown as the broker can hold it.

    Celery's native delayed delivery on RabbitMQ routes by whole seconds and refuses a
    countdown under one ("countdown must be a positive number"), failing the job; Redis holds
    any countdown as an ETA.
    """
    return max(countdown, 1.0) if is_amqp(broker_url) else countdown


def delivery_limit(env: Mapping[str, str] | None = None) -> int:
    """EMP_DELIVERY_LIMIT: how many deliveries of one job before it counts as poison."""
    env = os.environ if env is None else env
    raw = (env.get("EMP_DELIVERY_LIMIT") or str(DEFAULT_DELIVERY_LIMIT)).strip()
    if not raw.isdigit() or not 1 <= int(raw) < BROKER_DELIVERY_LIMIT:
        raise configuration_error(
            f"EMP_DELIVERY_LIMIT must be a whole number from 1 to {BROKER_DELIVERY_LIMIT - 1}, "
            f"not {raw!r}",
            variables=["EMP_DELIVERY_LIMIT"],
        )
    return int(raw)


def service_queues(
    specs: Iterable[ServiceSpec], broker_url: str, extra: Iterable[str] = ()
) -> list[Queue]:
    """One queue per service (and per `extra` name, e.g. `webhooks`), shaped for the broker."""
    names = list(dict.fromkeys([*(spec.queue for spec in specs), *extra]))
    if not is_amqp(broker_url):
        return [Queue(name) for name in names]
    return [
        Queue(
            name,
            JOB_EXCHANGE,
            routing_key=name,
            queue_arguments={
                "x-queue-type": "quorum",
                # RabbitMQ counts redeliveries (x-delivery-count); past the limit the message
                # goes to the dead-letter exchange rather than back to a worker. Above ours, so
                # the delivery that emp_tasks.deliveries fails as poison still arrives (and the
                # job ends FAILURE); the broker's limit is the backstop.
                "x-delivery-limit": BROKER_DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
                "x-dead-letter-routing-key": name,
            },
        )
        for name in names
    ]


def dead_letter_queues(specs: Iterable[ServiceSpec]) -> list[Queue]:
    """`<queue>.dead` per service, where RabbitMQ puts jobs past their delivery limit.

    They are declared, not consumed: no worker takes a job from them by itself.
    """
    names = dict.fromkeys(spec.queue for spec in specs)
    return [
        Queue(
            f"{name}.dead",
            DEAD_LETTER_EXCHANGE,
            routing_key=name,
            queue_arguments={"x-queue-type": "quorum"},
        )
        for name in names
    ]


def declare_dead_letter_queues(connection: Connection, specs: Iterable[ServiceSpec]) -> None:
    """Declare the dead-letter exchange and queues on `connection` (idempotent)."""
    channel = connection.default_channel
    for queue in dead_letter_queues(specs):
        queue(channel).declare()
