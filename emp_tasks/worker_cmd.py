"""`emp-tasks worker`: one worker process for one or more services, as the mapping sizes it.

The command checks everything it can first (service names, pool, autoscale, environment,
optionally the providers' health), prints what it reconciled, then *becomes*
`python -m celery -A emp_tasks worker -P <pool> ...` through exec: Celery monkey-patches for
gevent only when `-P gevent` is on its own command line, and an orchestrator's SIGTERM must reach
the worker itself, not a wrapper.
"""

from __future__ import annotations

import os
import sys
import tempfile

import click

from connectors.errors import ConnectorError
from emp_tasks.config import ServiceSpec, resolve_service, services
from emp_tasks.pools import (
    POOLS,
    PlanError,
    WorkerPlan,
    plan_worker,
    webhook_plan,
    with_webhooks,
)

__all__ = [
    "make_plan",
    "selected_services",
    "webhook_complaint",
    "worker",
    "worker_environment",
]

EXIT_FAILED, EXIT_USAGE = 1, 2
# kombu's filesystem transport keeps a worker's unacked jobs in that process's memory only.
EMBEDDED_WARNING = (
    "no EMP_BROKER_URL: the embedded filesystem broker loses the jobs a worker holds if it is "
    "killed (SIGKILL, OOM); use Redis or RabbitMQ for jobs you cannot lose"
)


def selected_services(names: tuple[str, ...], every: bool) -> list[ServiceSpec]:
    """`--service a,b --service c` or `--all`, resolved (aliases too), in the order given."""
    if every:
        if names:
            raise PlanError("give --service or --all, not both")
        return list(services().values())
    wanted = [part.strip() for name in names for part in name.split(",") if part.strip()]
    if not wanted:
        raise PlanError("name at least one service: --service NAME[,NAME...] or --all")
    specs = {spec.name: spec for spec in (resolve_service(name) for name in wanted)}
    return list(specs.values())


def worker_environment(plan: WorkerPlan, env: dict[str, str]) -> dict[str, str]:
    """The environment the Celery worker starts with."""
    env = dict(env)
    if (
        plan.pool == "prefork"
        and env.get("EMP_METRICS_PORT")
        and not env.get("PROMETHEUS_MULTIPROC_DIR")
    ):
        # Children count jobs in files here; the main process serves their sum and removes
        # the folder when the worker stops (emp_tasks.worker).
        folder = tempfile.mkdtemp(prefix="emp-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = env["EMP_METRICS_OWN_DIR"] = folder
    return env


def make_plan(
    names: tuple[str, ...],
    every: bool,
    webhooks: bool,
    *,
    pool: str | None = None,
    concurrency: int | None = None,
    autoscale: str | None = None,
) -> tuple[list[ServiceSpec], WorkerPlan]:
    """The services and the plan: `--webhooks` alone is a webhooks-only worker."""
    if webhooks and not names and not every:
        if autoscale:
            raise PlanError("--autoscale is for service workers; give --concurrency instead")
        return [], webhook_plan(pool=pool, concurrency=concurrency)
    specs = selected_services(names, every)
    plan = plan_worker(specs, pool=pool, concurrency=concurrency, autoscale=autoscale)
    return specs, with_webhooks(plan) if webhooks else plan


def webhook_complaint(env: dict[str, str] | None = None) -> str:
    """'' when this worker can sign and send webhooks, else the one line naming the setting."""
    from emp_tasks.webhook_policy import WebhookSettings
    from emp_tasks.webhook_signing import secrets_from_env

    try:
        secrets_from_env(env)
        WebhookSettings.from_env(env)
    except ConnectorError as exc:
        return f"emp-tasks worker: --webhooks: {exc.message}"
    return ""


def _fail(message: str, code: int) -> None:
    click.echo(f"emp-tasks worker: {message}", err=True)
    sys.exit(code)


def _require_healthy(specs: list[ServiceSpec]) -> None:
    from emp_tasks.health import check_services

    sick = [report for report in check_services(specs) if not report.healthy]
    if sick:
        details = "; ".join(f"{report.service}: {report.detail}" for report in sick)
        _fail(f"--require-healthy: unhealthy provider(s): {details}", EXIT_FAILED)


@click.command()
@click.option("--service", "names", multiple=True, help="Service(s) to serve: NAME[,NAME...].")
@click.option("--all", "every", is_flag=True, help="Serve every service in the mapping.")
@click.option(
    "--webhooks", is_flag=True, help="Also deliver job webhooks (alone: a webhooks-only worker)."
)
@click.option("--pool", default=None, help=f"Override the mapping's pool: {', '.join(POOLS)}.")
@click.option("--concurrency", type=int, default=None, help="Worker slots (default: mapping).")
@click.option("--autoscale", default=None, metavar="MAX,MIN", help="prefork and gevent only.")
@click.option("--require-healthy", is_flag=True, help="Refuse to start if a provider is down.")
@click.option("--name", "node_name", default=None, help="Celery node name (default: unique).")
@click.option("--loglevel", default="info", show_default=True)
def worker(
    names: tuple[str, ...],
    every: bool,
    webhooks: bool,
    pool: str | None,
    concurrency: int | None,
    autoscale: str | None,
    require_healthy: bool,
    node_name: str | None,
    loglevel: str,
) -> None:
    """Start a Celery worker for one or more services' queues."""
    from emp_tasks.logs import log_format
    from emp_tasks.worker import check_environment

    try:
        specs, plan = make_plan(
            names, every, webhooks, pool=pool, concurrency=concurrency, autoscale=autoscale
        )
    except (PlanError, ConnectorError) as exc:
        _fail(exc.message if isinstance(exc, ConnectorError) else str(exc), EXIT_USAGE)
        return
    complaint = check_environment(specs) or (webhook_complaint() if webhooks else "")
    if complaint:
        click.echo(complaint, err=True)
        sys.exit(EXIT_FAILED)
    if require_healthy:
        _require_healthy(specs)
    size = (
        f"autoscale {plan.autoscale[0]},{plan.autoscale[1]}"
        if plan.autoscale
        else (f"concurrency {plan.concurrency}")
    )
    click.echo(
        f"emp-tasks worker: {', '.join(plan.services)} on queue(s) {', '.join(plan.queues)}, "
        f"pool {plan.pool}, {size}",
        err=True,
    )
    for note in plan.notes:
        click.echo(f"emp-tasks worker: {note}", err=True)
    if not os.environ.get("EMP_BROKER_URL"):
        click.echo(f"emp-tasks worker: warning: {EMBEDDED_WARNING}", err=True)
    quiet = log_format() == "json"  # the banner is not JSON: keep stdout to log lines
    argv = [sys.executable, *plan.celery_argv(loglevel, node_name, quiet=quiet)]
    sys.stderr.flush()
    os.execve(sys.executable, argv, worker_environment(plan, dict(os.environ)))
