"""Celery settings for emp-tasks. Every setting says why it is set.

Broker and result backend come from EMP_BROKER_URL / EMP_RESULT_BACKEND. With neither set, an
embedded default needs no server: kombu's filesystem transport under ./var/broker (it supports
fanout, so worker events reach Flower) and SQLite through SQLAlchemy for results. Redis is the
production broker and backend; RabbitMQ (amqp://) works as a broker too.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery.app.backends import BACKEND_ALIASES
from kombu.transport import TRANSPORT_ALIASES

from connectors.errors import ConnectorError
from emp_tasks import events, queues, visibility
from emp_tasks.config import services

VAR_DIR = Path(os.environ.get("EMP_VAR_DIR") or "var").resolve()
_BROKER = os.environ.get("EMP_BROKER_URL") or ""
_BACKEND = os.environ.get("EMP_RESULT_BACKEND") or ""


def _filesystem_options() -> dict[str, object]:
    # One folder for both directions: producers and consumers are different processes.
    folders = {name: VAR_DIR / "broker" / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
        # The folder is polled; kombu's 1 s default makes every job, ping and reply wait up
        # to a second on the embedded default. A quarter second costs little on one machine.
        "polling_interval": 0.25,
    }


def _default_backend() -> str:
    if _BROKER.startswith(("redis://", "rediss://")):
        return _BROKER  # one Redis serves both, as in production
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return f"db+sqlite:///{VAR_DIR / 'results.sqlite'}"


broker_url = _BROKER or "filesystem://localhost/"  # a host, or kombu warns on every connection
# redis:// is kombu's Redis transport with one redis-py client per channel, not one per
# command (emp_tasks/redis_transport.py: about 0.4 ms of CPU saved on every publish). An alias
# of the scheme, not `broker_transport`, so a broker URL changed later keeps its own transport;
# named, not imported, so kombu's Redis module loads only when a Redis broker is used.
TRANSPORT_ALIASES["redis"] = "emp_tasks.redis_transport:Transport"
# redis:// results are Celery's Redis backend storing each state (its check that no SUCCESS is
# overwritten, the write and the publish) in one round trip instead of two
# (emp_tasks/redis_backend.py). An alias again, so the module loads only for a Redis backend.
for _scheme in ("redis", "rediss"):
    BACKEND_ALIASES[_scheme] = "emp_tasks.redis_backend:RedisBackend"
result_backend = _BACKEND or _default_backend()
# A Redis restart must not fail the jobs that were storing a state at that moment (STARTED is
# stored outside the task body): Celery retries a result-backend write on a connection error,
# with backoff (10 ms doubling, at most 10 s between tries), for up to about half a minute.
result_backend_always_retry = True
result_backend_max_retries = 10
broker_connection_retry_on_startup = True

# JSON only: no pickle on the wire, so a message can never execute code when it is loaded.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Ack after the task finishes, so a worker that dies mid-job does not lose it ...
task_acks_late = True
# ... and requeue it when the worker process is killed (OOM, SIGKILL) instead of acking it.
task_reject_on_worker_lost = True
# A failed job is acked: its retries are new messages published by Task.retry. A job killed by
# its hard time limit is acked too: redelivering it would re-run a paid call that hangs.
task_acks_on_failure = True
task_acks_on_timeout = True
# Take one job at a time per worker slot; paid, slow jobs should not wait behind a busy slot.
worker_prefetch_multiplier = 1
# When the broker connection drops, cancel running acks_late jobs rather than let the
# redelivered copy run in parallel with them (two paid calls for one job). Only a prefork pool
# can do this: the threads pool cannot stop a running thread (Celery warns and carries on).
worker_cancel_long_running_tasks_on_connection_loss = True
# A redelivered copy of a job that already completed (its worker died between storing the
# result and acking, or its connection dropped) returns the stored result instead of calling
# the provider again. Celery checks the result backend only for messages the broker marks as
# redelivered, which both Redis (kombu's restore) and RabbitMQ do.
worker_deduplicate_successful_tasks = True

# Graceful stop (a rolling deploy): SIGTERM lets running jobs finish for up to this many
# seconds, then requeues what is left; see emp_tasks.shutdown for how, and why not Celery's own
# soft shutdown (it sleeps the whole timeout even when the jobs finish in a second).
soft_shutdown_timeout = float(os.environ.get("EMP_SOFT_SHUTDOWN_TIMEOUT") or 60)

# Events for Flower and `emp-tasks events`: task lifecycle plus our job events.
worker_send_task_events = True
# `task-sent` lets Flower show a job as soon as it is queued; it costs the client a second
# publish per submit, so EMP_TASK_SENT_EVENT=0 turns it off (emp_tasks.events.task_sent_event).
try:
    task_send_sent_event = events.task_sent_event()
except ConnectorError:  # `emp-tasks worker` refuses to start, naming the setting
    task_send_sent_event = True
# Show STARTED, and store name/args/retries with results (the job record reads them).
task_track_started = True
result_extended = True
result_expires = 7 * 24 * 3600

# Every service queue exists, so a worker without -Q consumes them all; -Q narrows it. On
# RabbitMQ they are quorum queues with a delivery limit and dead letters (emp_tasks.queues).
# The webhooks queue is shaped the same, so its retries also wait in RabbitMQ, not in a worker.
task_queues = queues.service_queues(services().values(), broker_url, extra=["webhooks"])
# Each service's task goes to its own queue, served by a pool sized for that service.
task_routes = {spec.task_name: {"queue": spec.queue} for spec in services().values()}
# Retries are ETA messages a worker holds in memory, outside the prefetch window; a 429 storm
# must not fill a worker's RAM with them.
worker_eta_task_limit = 1000
task_default_queue = "default"
task_create_missing_queues = True

# Redis redelivers a message left unacked for longer than the visibility timeout. It is short
# (EMP_VISIBILITY_TIMEOUT, 30 s), so the jobs of a killed worker run again within a minute, and
# every live worker keeps re-scoring the messages it still holds (emp_tasks.visibility), so a
# live job longer than the timeout - a slow poll, a retry held as an ETA message - is never
# delivered twice. kombu's restore sweep runs every few seconds instead of every 100.
try:
    visibility_timeout = visibility.visibility_timeout()
except ConnectorError:  # `emp-tasks worker` refuses to start, naming the setting
    visibility_timeout = visibility.DEFAULT_VISIBILITY_TIMEOUT
broker_transport_options: dict[str, object] = visibility.transport_options(visibility_timeout)
if broker_url.startswith("filesystem://"):
    broker_transport_options = {**_filesystem_options()}
