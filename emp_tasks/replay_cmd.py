"""`emp-tasks failed` and `emp-tasks replay`: list failed jobs, and run them again as new jobs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click

from connectors.errors import ConnectorError, FailureType

__all__ = ["failed", "replay"]

EXIT_NONE_REPLAYED, EXIT_REFUSED = 1, 2
_TYPES = click.Choice([t.value for t in FailureType])


def _app() -> Any:
    from emp_tasks.celery_app import app

    return app


def _refuse(line: str) -> NoReturn:
    click.echo(line, err=True)  # one line naming the option, not click's usage block
    sys.exit(EXIT_REFUSED)


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    from emp_tasks.replay import parse_since

    if value is None:
        return None
    try:
        return parse_since(value)
    except ValueError as exc:
        _refuse(str(exc))


def _service(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    from emp_tasks.config import resolve_service

    if value is None:
        return None
    try:
        return resolve_service(value).name  # an alias lists its target's jobs
    except ConnectorError as exc:
        _refuse(f"--service: {exc.message}")


def _filters(command: Any) -> Any:
    for option in reversed(
        (
            click.option("--service", callback=_service, help="Only this service's jobs."),
            click.option("--failure-type", type=_TYPES, help="Only this failure type."),
            click.option("--since", callback=_since, help="Only jobs that ended within: 30m, 1h."),
            click.option("--limit", type=click.IntRange(1), default=100, show_default=True),
            click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object."),
            click.option(
                "--dead-letters",
                is_flag=True,
                help="RabbitMQ: the jobs in the <queue>.dead queues.",
            ),
        )
    ):
        command = option(command)
    return command


def _refused(exc: ConnectorError) -> NoReturn:
    _refuse(exc.message)  # a backend or broker that cannot be listed: one line, no traceback


def _list(service: str | None, failure_type: str | None, since: Any, limit: int) -> list[Any]:
    from emp_tasks.replay import failed_jobs

    try:
        return failed_jobs(_app(), service, failure_type, since, limit)
    except ConnectorError as exc:
        _refused(exc)


def _dead(service: str | None, limit: int, handle: Any) -> None:
    from emp_tasks.replay import handle_dead_letters

    try:
        handle_dead_letters(_app(), handle, service, limit)
    except ConnectorError as exc:
        _refused(exc)


def _dead_list(service: str | None, failure_type: str | None, since: Any, limit: int) -> list[Any]:
    from emp_tasks.replay import matches

    after = None if since is None else datetime.now(UTC) - since
    found: list[Any] = []

    def keep(job: Any) -> bool:
        if job is not None and matches(job, None, failure_type, after):
            found.append(job)
        return False  # put back: listing never takes a job off its dead queue

    _dead(service, limit, keep)
    return found


@click.command()
@_filters
def failed(
    service: str | None,
    failure_type: str | None,
    since: Any,
    limit: int,
    as_json: bool,
    dead_letters: bool,
) -> None:
    """List failed jobs, newest first, with their failure type and reason."""
    found = (_dead_list if dead_letters else _list)(service, failure_type, since, limit)
    jobs = [job.summary() for job in found]
    if as_json:
        click.echo(json.dumps({"jobs": jobs}))
        return
    for job in jobs:
        click.echo(
            f"{job['failed_at']}  {job['job_id']}  {job['service']}  "
            f"{job['failure_type']}/{job['failure_reason']}  attempts {job['attempts']}: "
            f"{job['message']}" + (f" (replay of {job['replay_of']})" if job["replay_of"] else "")
        )
    click.echo(f"{len(jobs)} failed job(s)", err=True)


@click.command()
@click.argument("job_id", required=False)
@click.option("--force", is_flag=True, help="Also replay failures that cannot succeed unchanged.")
@_filters
def replay(
    job_id: str | None,
    force: bool,
    service: str | None,
    failure_type: str | None,
    since: Any,
    limit: int,
    as_json: bool,
    dead_letters: bool,
) -> None:
    """Submit failed jobs again as new jobs: JOB_ID, or every match of the filters."""
    from emp_tasks.replay import find_job, matches

    filters = service is not None or failure_type is not None or since is not None
    if job_id is not None and (filters or dead_letters):
        raise click.UsageError("give a JOB_ID, or filters, not both")
    if job_id is None and not (filters or dead_letters):
        raise click.UsageError("give a JOB_ID, or --service/--failure-type/--since/--dead-letters")
    done = _Replays(force)
    if dead_letters:
        after = None if since is None else datetime.now(UTC) - since

        def take(job: Any) -> bool:
            # Acked off the dead queue only once its new job is submitted; the rest go back.
            wanted = job is not None and matches(job, None, failure_type, after)
            return wanted and done.one(job.job_id, "failed", job)

        _dead(service, limit, take)
    elif job_id is not None:
        done.one(job_id, *find_job(_app(), job_id))
    else:
        for job in _list(service, failure_type, since, limit):
            done.one(job.job_id, "failed", job)
    done.report(as_json)
    sys.exit(0 if done.replayed else EXIT_NONE_REPLAYED)


class _Replays:
    """What one `replay` run replayed and skipped."""

    def __init__(self, force: bool) -> None:
        self.force = force
        self.replayed: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []

    def one(self, job_id: str, status: str, job: Any) -> bool:
        """Replay one job, or record why not; whether it was replayed."""
        from emp_tasks.client import submit
        from emp_tasks.replay import replay_job, replay_refusal

        reason = replay_refusal(status, job.failure_type if job else None, self.force)
        if reason is None and job is None:
            reason = "it is not an emp-tasks job"
        if reason is None:
            try:
                new_id = replay_job(job, submit)
            except ConnectorError as exc:  # the stored payload no longer passes validation
                reason = f"refused at submit: {exc.message}"
            else:
                self.replayed.append(
                    {"job_id": new_id, "replay_of": job_id, "service": job.service}
                )
                return True
        self.skipped.append({"job_id": job_id, "reason": reason})
        return False

    def report(self, as_json: bool) -> None:
        if as_json:
            click.echo(json.dumps({"replayed": self.replayed, "skipped": self.skipped}))
            return
        for item in self.replayed:
            click.echo(item["job_id"])  # the new id alone, so a script can capture it
            click.echo(
                f"replayed {item['replay_of']} as {item['job_id']} ({item['service']})", err=True
            )
        for item in self.skipped:
            click.echo(f"skipped {item['job_id']}: {item['reason']}", err=True)
