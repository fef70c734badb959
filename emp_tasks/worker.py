"""Worker start-up: refuse to start a service whose required environment is missing.

Both `emp-tasks worker --service glif` and `celery -A emp_tasks worker -Q glif` pass through
`check_environment`, so a worker without GLIF_API_TOKEN exits non-zero at once with one line
naming the variable, instead of taking jobs and failing each of them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from celery import signals

from connectors.assets import saver_from_env
from connectors.errors import ConnectorError
from emp_tasks.config import ServiceSpec, missing_env, services

__all__ = ["check_environment", "services_for_queues", "worker_argv"]


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
    if any(spec.saves_assets for spec in specs):
        # Building the saver checks CLOUD_STORAGE_* without any network call; a bad setting
        # found now costs nothing, found per job it costs a paid provider call each time.
        try:
            saver_from_env(env)
        except ConnectorError as exc:
            return f"emp-tasks worker: output storage is misconfigured: {exc.message}"
    return ""


def _queues_option(options: Mapping[str, Any]) -> list[str]:
    raw = options.get("queues") or []
    if isinstance(raw, str):
        return raw.split(",")
    return [q for item in raw for q in str(item).split(",")]


@signals.celeryd_init.connect  # type: ignore[untyped-decorator]
def _refuse_missing_env(options: Mapping[str, Any] | None = None, **_: Any) -> None:
    complaint = check_environment(services_for_queues(_queues_option(options or {})))
    if complaint:
        print(complaint, file=sys.stderr, flush=True)
        raise SystemExit(1)


def worker_argv(
    spec: ServiceSpec, concurrency: int | None, pool: str | None, loglevel: str
) -> list[str]:
    """`celery worker` arguments for one service, with the mapping's defaults."""
    return [
        "worker",
        "-Q",
        spec.queue,
        "-P",
        pool or spec.pool,
        "-c",
        str(concurrency or spec.concurrency),
        "-n",
        f"{spec.name}@%h",
        "-E",
        "-l",
        loglevel,
    ]
