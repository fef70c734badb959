"""Worker start-up: refuse a worker that cannot run its services, then start its side jobs.

Both `emp-tasks worker --service glif` and `celery -A emp_tasks worker -Q glif` pass through
here (Celery's `celeryd_init`, in the main process, before any job is taken):

- `check_environment`: a worker without GLIF_API_TOKEN, with broken storage settings, a bad
  EMP_METRICS_PORT or EMP_LOG_FORMAT exits non-zero at once with one line naming the setting,
  instead of taking jobs and failing each of them;
- the tokens of the services it serves are registered for redaction before anything logs;
- `/metrics` is served when EMP_METRICS_PORT is set, and the health monitor probes each
  service at start and then every `health_check_interval_seconds`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from celery import signals

from connectors.assets import saver_from_env
from connectors.errors import ConnectorError
from connectors.redact import register_secret
from emp_tasks import events, logs, metrics, queues, shutdown, visibility, worker_events
from emp_tasks.config import ServiceSpec, missing_env, services

__all__ = ["check_environment", "services_for_queues", "slots"]

_served: list[ServiceSpec] | None = None  # set at start-up; [] for a webhooks-only worker
_slots: int | None = None


def services_for_queues(queues: Iterable[str] | None) -> list[ServiceSpec]:
    """The services a worker consuming `queues` will run (all of them when no -Q is given)."""
    wanted = {q.strip() for q in queues or () if q.strip()}
    return [spec for spec in services().values() if not wanted or spec.queue in wanted]


def check_environment(specs: Iterable[ServiceSpec], env: Mapping[str, str] | None = None) -> str:
    """An empty string when the services can run here, else the one-line complaint."""
    specs = list(specs)
    problems = [
        f"{spec.name}: {', '.join(missing)}"
        for spec in specs
        if (missing := missing_env(spec, env))
    ]
    if problems:
        return "emp-tasks worker: missing required environment variables: " + "; ".join(problems)
    try:
        metrics.metrics_address(env)
        logs.log_format(env)
        queues.delivery_limit(env)
        visibility.visibility_timeout(env)
        events.progress_timing(env)
        events.task_sent_event(env)
        worker_events.flush_interval(env)
    except ConnectorError as exc:
        return f"emp-tasks worker: {exc.message}"
    if any(spec.saves_assets for spec in specs):
        # Building the saver checks CLOUD_STORAGE_* without any network call; a bad setting
        # found now costs nothing, found per job it costs a paid provider call each time.
        try:
            saver_from_env(env)
        except ConnectorError as exc:
            return f"emp-tasks worker: output storage is misconfigured: {exc.message}"
    return ""


def slots() -> int | None:
    """This worker's concurrency (its `-c`), once it has started; None before."""
    return _slots


def _concurrency_option(options: Mapping[str, Any]) -> int | None:
    raw = options.get("concurrency")
    return int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None


def _queues_option(options: Mapping[str, Any]) -> list[str]:
    raw = options.get("queues") or []
    if isinstance(raw, str):
        return raw.split(",")
    return [q for item in raw for q in str(item).split(",")]


@signals.celeryd_init.connect  # type: ignore[untyped-decorator]
def _refuse_missing_env(options: Mapping[str, Any] | None = None, **_: Any) -> None:
    asked = _queues_option(options or {})
    specs = services_for_queues(asked)
    if asked and all(q.strip() == "webhooks" for q in asked):
        specs = []  # delivers webhooks only: no provider to check or probe
    complaint = check_environment(specs)
    if not complaint and (not asked or "webhooks" in {q.strip() for q in asked}):
        from emp_tasks.worker_cmd import webhook_complaint  # imports click: only when needed

        complaint = webhook_complaint() if "webhooks" in {q.strip() for q in asked} else ""
    if complaint:
        print(complaint, file=sys.stderr, flush=True)
        raise SystemExit(1)
    for spec in specs:
        for name in spec.required_env:
            register_secret(os.environ.get(name))
    global _served, _slots
    _served = specs
    _slots = _concurrency_option(options or {})
    where = metrics.metrics_address()
    if where is not None:
        metrics.serve_metrics(where)  # before the pool forks: one server, in the main process


@signals.worker_init.connect  # type: ignore[untyped-decorator]
def _declare_amqp_queues(sender: Any = None, **_: Any) -> None:
    # Before the consumer starts: Celery binds *every* service queue to its delayed-delivery
    # exchanges and gives native delayed delivery up if one is missing, so a worker declares
    # them all (idempotent), and the dead-letter queues its jobs may end in.
    app = getattr(sender, "app", None)
    if app is None or not queues.is_amqp(str(app.conf.broker_url)):
        return
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.amqp.queues.values():
            queue(channel).declare()
        queues.declare_dead_letter_queues(connection, services_for_queues(None))


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _extend_visibility(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        visibility.start(app)


@signals.worker_ready.connect  # type: ignore[untyped-decorator]
def _start_health_checks(**_: Any) -> None:
    from emp_tasks.health import start_health_checks

    start_health_checks(_served if _served is not None else services_for_queues(None))


@signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
def _remove_own_metrics_dir(**_: Any) -> None:
    folder = os.environ.get("EMP_METRICS_OWN_DIR")
    if folder and folder == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(folder, ignore_errors=True)


_ = shutdown  # its signal handlers bound every warm shutdown of this worker
