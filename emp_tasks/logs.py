"""Worker log format: human-readable by default, one JSON object per line with EMP_LOG_FORMAT=json.

A JSON line carries `time`, `level`, `logger`, `message` and, where they apply, the job's
`job_id`, `service`, `attempt`, `outcome`, `failure_type`, `failure_reason` and `duration_ms`
(from the record's `extra`, or from the Celery task running in this thread). Every message and
field passes through `connectors.redact.scrub`, so a token a provider echoed back, or one a
library logged, is masked before it is written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from celery import signals
from celery.app import trace

from connectors.errors import configuration_error
from connectors.redact import scrub
from emp_tasks import waits

__all__ = ["JOB_FIELDS", "JsonFormatter", "RepeatedOutcomes", "log_format"]

JOB_FIELDS = (
    "job_id",
    "service",
    "attempt",
    "outcome",
    "failure_type",
    "failure_reason",
    "duration_ms",
)
FORMATS = ("text", "json")


def log_format(env: Mapping[str, str] | None = None) -> str:
    """EMP_LOG_FORMAT, checked: `text` (default) or `json`."""
    env = os.environ if env is None else env
    value = (env.get("EMP_LOG_FORMAT") or "text").strip().lower()
    if value not in FORMATS:
        raise configuration_error(
            f"EMP_LOG_FORMAT must be text or json, not {value!r}", variables=["EMP_LOG_FORMAT"]
        )
    return value


def _task_fields() -> dict[str, Any]:
    from celery._state import get_current_task

    task = get_current_task()
    if task is None or not getattr(task, "name", "").startswith("emp."):
        return {}
    request = task.request
    metadata = waits.metadata_in(request.args, request.kwargs)
    return {
        "job_id": request.id,
        "service": task.name.removeprefix("emp."),
        "attempt": waits.attempt_of(request.retries, metadata) + 1,  # a wait is not an attempt
    }


def _clean(value: Any) -> Any:
    return scrub(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line, secrets scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "message": scrub(record.getMessage()),
        }
        with contextlib.suppress(Exception):  # outside a task or an app: no job fields
            line.update(_task_fields())
        for name in JOB_FIELDS:
            if name in record.__dict__:
                line[name] = _clean(record.__dict__[name])
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def _use_json(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is None or log_format() != "json":
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


class RepeatedOutcomes(logging.Filter):
    """Drops Celery's INFO lines for a task's success, retry or expected failure."""

    # Celery's trace logs each of them again ("Task ... succeeded in 1.05s: <the result's
    # repr>") after the job's own `emp_tasks.jobs` line: a second line per job that copies its
    # output into the log, and about 0.2 ms of the worker's CPU per job at 200 in flight. Its
    # other lines (a duplicate delivery skipped, a task that raised unexpectedly) stay.
    DROPPED = frozenset({trace.LOG_SUCCESS, trace.LOG_RETRY, trace.LOG_FAILURE.strip()})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.INFO or record.msg not in self.DROPPED


def _one_outcome_line(loglevel: int | str | None = None, **_: Any) -> None:
    """Below DEBUG, each attempt's outcome is logged once, by its `emp_tasks.jobs` line."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    logger = logging.getLogger("celery.app.trace")
    if isinstance(level, int) and level <= logging.DEBUG:
        return
    if not any(isinstance(f, RepeatedOutcomes) for f in logger.filters):
        logger.addFilter(RepeatedOutcomes())


# Celery sets its handlers up first, then lets us restyle them (for the worker's root logger
# and its task logger alike), so its own lines - "Task ... succeeded" - come out as JSON too.
signals.after_setup_logger.connect(_use_json, weak=False)
signals.after_setup_logger.connect(_one_outcome_line, weak=False)
signals.after_setup_task_logger.connect(_use_json, weak=False)
