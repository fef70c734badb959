"""JsonFormatter: one JSON object a line, job fields from `extra`, secrets scrubbed."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from celery.app import trace

from connectors.errors import ConnectorError
from connectors.redact import register_secret
from emp_tasks.logs import JsonFormatter, RepeatedOutcomes, _one_outcome_line, log_format


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("emp_tasks.jobs", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_a_record_is_one_json_line_with_its_job_fields() -> None:
    line = JsonFormatter().format(
        record("job %s done", "j1", job_id="j1", service="glif", attempt=2, outcome="completed",
               duration_ms=12, unrelated="x")
    )  # fmt: skip
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "job j1 done"
    assert (data["level"], data["logger"]) == ("INFO", "emp_tasks.jobs")
    assert {k: data[k] for k in ("job_id", "service", "attempt", "outcome", "duration_ms")} == {
        "job_id": "j1", "service": "glif", "attempt": 2, "outcome": "completed", "duration_ms": 12
    }  # fmt: skip
    assert "unrelated" not in data


def test_registered_secrets_never_reach_a_line() -> None:
    register_secret("sk-live-abcdef123456")
    try:
        raise RuntimeError("provider echoed sk-live-abcdef123456")
    except RuntimeError:
        rec = record("calling with Bearer sk-live-abcdef123456", outcome="failed")
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "sk-live-abcdef123456" not in line
    assert "[REDACTED]" in json.loads(line)["exception"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "text"), ({"EMP_LOG_FORMAT": ""}, "text"), ({"EMP_LOG_FORMAT": "JSON"}, "json")],
)
def test_log_format_defaults_to_text(env: dict[str, str], expected: str) -> None:
    assert log_format(env) == expected


def test_an_unknown_log_format_names_the_setting() -> None:
    with pytest.raises(ConnectorError, match="EMP_LOG_FORMAT must be text or json"):
        log_format({"EMP_LOG_FORMAT": "logfmt"})


@pytest.mark.parametrize(
    ("level", "message", "args", "kept"),
    [
        (logging.INFO, trace.LOG_SUCCESS, {"name": "emp.glif", "id": "j", "runtime": 1,
                                           "return_value": "{...}"}, False),
        (logging.INFO, trace.LOG_RETRY, {"name": "emp.glif", "id": "j", "exc": "busy"}, False),
        (logging.INFO, trace.LOG_FAILURE.strip(),
         {"name": "emp.glif", "id": "j", "description": "raised expected", "exc": "e"}, False),
        (logging.ERROR, trace.LOG_FAILURE.strip(),
         {"name": "emp.glif", "id": "j", "description": "raised unexpected", "exc": "e"}, True),
        (logging.INFO, trace.LOG_IGNORED,
         {"name": "emp.glif", "id": "j", "description": "Task already completed successfully."},
         True),
    ],
)  # fmt: skip
def test_celery_lines_that_repeat_an_outcome_are_dropped_and_the_rest_kept(
    level: int, message: str, args: dict[str, object], kept: bool
) -> None:
    rec = logging.LogRecord("celery.app.trace", level, __file__, 1, message, (args,), None)
    assert RepeatedOutcomes().filter(rec) is kept


@pytest.mark.parametrize(
    ("loglevel", "filtered"),
    [(logging.INFO, True), ("INFO", True), (logging.WARNING, True), (logging.DEBUG, False),
     ("DEBUG", False)],
)  # fmt: skip
def test_the_filter_is_installed_once_below_debug(loglevel: int | str, filtered: bool) -> None:
    logger = logging.getLogger("celery.app.trace")
    before = list(logger.filters)
    try:
        _one_outcome_line(loglevel=loglevel)
        _one_outcome_line(loglevel=loglevel)
        added = [f for f in logger.filters if isinstance(f, RepeatedOutcomes)]
        assert len(added) == (1 if filtered else 0)
    finally:
        logger.filters[:] = before
