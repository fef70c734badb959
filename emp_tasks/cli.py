"""`emp-tasks`: run a service's worker, submit jobs, read their status, stream events, demo."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any, Literal

import click

from connectors.classify import error_from_exception
from connectors.errors import ConnectorError

__all__ = ["main"]

EXIT_FAILED, EXIT_REFUSED = 1, 2


def _app() -> Any:
    from emp_tasks.celery_app import app

    return app


@click.group()
def main() -> None:
    """Run AI generation jobs on Celery workers, one queue per service."""


def _print_record(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(record, default=str))
        return
    click.echo(
        f"job {record['job_id']} ({record['service']}): {record['status']}, "
        f"attempts {record.get('attempts')}"
    )
    if "error" in record:
        err = record["error"]
        click.echo(
            f"  {err['failure_type']}/{err['failure_reason']} "
            f"(retryable={err['retryable']}): {err['message']}"
        )
    elif "result" in record:
        click.echo(json.dumps(record["result"].get("data"), indent=2, default=str))
    for hook in record.get("webhook_deliveries") or ():  # one line per attempt, oldest first
        click.echo(
            f"  webhook {hook['event']} attempt {hook['attempt']}: {hook['outcome']} "
            f"(HTTP {hook['status'] or '-'}) at {hook['time']} {hook.get('reason') or ''}".rstrip()
        )


def _wait(job_id: str, service: str, timeout: float, show_bar: bool) -> dict[str, Any]:
    from emp_tasks.client import job_record

    deadline = time.monotonic() + timeout
    record = job_record(job_id, service)
    while record["status"] not in ("completed", "failed") and time.monotonic() < deadline:
        if show_bar:
            pct = float((record.get("progress") or {}).get("progress") or 0)
            bar = "#" * int(pct / 5)
            click.echo(f"\r[{bar:<20}] {pct:5.1f}% {record['status']:<9}", nl=False, err=True)
        time.sleep(0.2)
        record = job_record(job_id, service)
    if show_bar:
        click.echo("", err=True)
    return record


@main.command()
@click.argument("service")
@click.argument("payload_json")
@click.option("--job-id", default=None, help="Use this job id (default: a new UUID).")
@click.option(
    "--ctx",
    "ctx_json",
    default=None,
    metavar="CTX_JSON",
    help='The job\'s ctx: storage, tenant, webhook, e.g. \'{"tenant": "team-a"}\'.',
)
@click.option("--wait", is_flag=True, help="Wait for the job to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@click.option("--timeout", type=float, default=600.0, show_default=True)
def submit(
    service: str,
    payload_json: str,
    job_id: str | None,
    ctx_json: str | None,
    wait: bool,
    as_json: bool,
    timeout: float,
) -> None:
    """Submit a job. Exit 0 completed (or queued), 1 failed, 2 refused input."""
    from emp_tasks.client import submit as submit_job

    try:
        payload = _json_argument(payload_json, "PAYLOAD_JSON")
        ctx = None if ctx_json is None else _json_argument(ctx_json, "--ctx")
        result = submit_job(service, payload, job_id=job_id, ctx=ctx)
    except ConnectorError as exc:
        _unsubmitted(service, job_id, exc, "refused", as_json)
        return
    except Exception as exc:
        # Not the caller's input (that is checked above): a setting, or a broker or spend store
        # that cannot be reached, e.g. a malformed EMP_BROKER_URL. It is not refused input,
        # so it is not reported as such, and it is one clear line, not a traceback.
        error = error_from_exception(exc, service)
        _unsubmitted(service, job_id, error, "failed", as_json)
        return
    spec_service = (result.name or f"emp.{service}").removeprefix("emp.")
    if not wait:
        _print_record(
            {"job_id": result.id, "service": spec_service, "status": "pending", "attempts": None},
            as_json,
        )
        return
    record = _wait(result.id, spec_service, timeout, sys.stderr.isatty() and not as_json)
    _print_record(record, as_json)
    sys.exit(0 if record["status"] == "completed" else EXIT_FAILED)


def _json_argument(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:  # a JSONDecodeError, or a number too long to convert
        raise ConnectorError(
            f"{name} is not valid JSON: {exc}", failure_reason="invalid_format"
        ) from None


def _unsubmitted(
    service: str,
    job_id: str | None,
    error: ConnectorError,
    status: Literal["refused", "failed"],
    as_json: bool,
) -> None:
    from emp_tasks.client import error_fields

    record = {
        "job_id": job_id,
        "service": service,
        "status": status,
        "attempts": 0,
        "error": error_fields(error),
    }
    if as_json:
        click.echo(json.dumps(record))
    else:
        click.echo(f"{status}: {error.message}", err=True)
    sys.exit(EXIT_REFUSED if status == "refused" else EXIT_FAILED)


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
def status(job_id: str, as_json: bool) -> None:
    """Show a job's record. Exit 0 completed, 1 failed, 3 still running or unknown."""
    from emp_tasks.client import job_record

    record = job_record(job_id)
    _print_record(record, as_json)
    sys.exit({"completed": 0, "failed": EXIT_FAILED}.get(record["status"], 3))


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Also Celery's own task events.")
def events(show_all: bool) -> None:
    """Stream job events as JSON lines until interrupted."""
    from emp_tasks.event_stream import stream_events

    with contextlib.suppress(KeyboardInterrupt):
        stream_events(_app(), lambda line: click.echo(line), show_all=show_all)


@main.command()
def demo() -> None:
    """Offline showcase: Glif emulator + worker + four jobs, on the embedded default."""
    env = {k: v for k, v in os.environ.items() if k not in ("EMP_BROKER_URL", "EMP_RESULT_BACKEND")}
    env["EMP_VAR_DIR"] = os.path.abspath(os.path.join("var", "demo"))
    # A fresh interpreter, so the embedded broker is configured for the demo's own folder.
    sys.exit(subprocess.call([sys.executable, "-m", "emp_tasks.demo"], env=env))


def _register_commands() -> None:
    # Each fleet command lives in its own module; they share this group.
    from emp_tasks.flower_cmd import flower
    from emp_tasks.health_cmd import health, ping
    from emp_tasks.replay_cmd import failed, replay
    from emp_tasks.spend_cmd import spend
    from emp_tasks.worker_cmd import worker

    for command in (worker, health, ping, flower, failed, replay, spend):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
