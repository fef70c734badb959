"""The decisions behind `emp-tasks failed` and `emp-tasks replay`, as tables; the CLI in-process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.errors import ConnectorError
from emp_tasks import replay, replay_cmd
from emp_tasks.cli import main
from emp_tasks.replay import FailedJob, failed_job, matches, parse_since, replay_refusal

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def job(**fields: Any) -> FailedJob:
    base: dict[str, Any] = {
        "job_id": "j1",
        "service": "mock",
        "failure_type": "service_error",
        "failure_reason": "service_unavailable",
        "message": "boom",
        "attempts": 4,
        "failed_at": NOW - timedelta(minutes=10),
        "payload": {"should_fail": True},
        "ctx": {"prefix": "t/"},
    }
    return FailedJob(**{**base, **fields})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("45s", timedelta(seconds=45)),
        (" 1h ", timedelta(hours=1)),
    ],
)
def test_since_takes_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1.5h", "-1h", "0m", "1w", "1 h", "1hour"])
def test_since_refuses_anything_else_naming_the_option(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--since must be"):
        parse_since(text)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"service": "mock"}, True),
        ({"service": "glif"}, False),
        ({"failure_type": "service_error"}, True),
        ({"failure_type": "timeout"}, False),
        ({"after": NOW - timedelta(hours=1)}, True),
        ({"after": NOW - timedelta(minutes=5)}, False),
        ({"service": "mock", "failure_type": "timeout"}, False),
    ],
)
def test_a_failed_job_passes_the_filters_it_matches(
    filters: dict[str, Any], expected: bool
) -> None:
    assert matches(job(), **filters) is expected


def test_a_job_without_an_end_time_is_never_recent() -> None:
    assert not matches(job(failed_at=None), after=NOW - timedelta(days=1))
    assert matches(job(failed_at=None))


@pytest.mark.parametrize(
    ("status", "failure_type", "force", "refused"),
    [
        ("failed", "service_error", False, None),
        ("failed", "rate_limit", False, None),
        ("failed", "validation_error", False, "validation_error cannot succeed unchanged"),
        ("failed", "auth_error", False, "auth_error cannot succeed unchanged"),
        ("failed", "generation_refusal", False, "generation_refusal cannot succeed"),
        ("failed", "validation_error", True, None),
        ("failed", "auth_error", True, None),
        ("completed", None, False, "it is completed, not failed"),
        ("running", None, True, "it is running, not failed"),
        ("pending", None, True, "it is pending (or unknown), not failed"),
    ],
)
def test_only_failures_that_can_succeed_are_replayed_unless_forced(
    status: str, failure_type: str | None, force: bool, refused: str | None
) -> None:
    reason = replay_refusal(status, failure_type, force)
    assert (reason is None) if refused is None else (reason is not None and refused in reason)


def error(**fields: Any) -> ConnectorError:
    return ConnectorError("Mock failure", failure_type="timeout", **fields)


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        (  # by name, as client.submit sends it
            {"args": [{"a": 1}], "kwargs": {"ctx": {"prefix": "p/"}, "metadata": {"k": "v"}}},
            ({"a": 1}, {"prefix": "p/"}, {"k": "v"}),
        ),
        ({"args": [{"a": 1}, {"prefix": "p/"}, {"k": "v"}], "kwargs": {}}, None),  # by position
        ({"args": [], "kwargs": {"payload": {"a": 1}}}, ({"a": 1}, None, None)),
    ],
)
def test_a_failed_meta_keeps_what_a_replay_needs(
    meta: dict[str, Any], expected: tuple[Any, Any, Any] | None
) -> None:
    stored = {"task_id": "j1", "status": "FAILURE", "name": "emp.mock", "result": error()}
    found = failed_job({**stored, "date_done": "2026-12-01T11:50:00", "retries": 0, **meta})
    assert found is not None
    want = expected or ({"a": 1}, {"prefix": "p/"}, {"k": "v"})
    assert (found.payload, found.ctx, found.metadata) == want
    assert (found.service, found.failure_type, found.attempts) == ("mock", "timeout", 1)
    assert found.failed_at == datetime(2026, 12, 1, 11, 50, tzinfo=UTC)


@pytest.mark.parametrize(
    "meta",
    [
        {"status": "SUCCESS", "name": "emp.mock", "result": {}},
        {"status": "FAILURE", "name": "other.task", "result": error()},
        {"status": "FAILURE", "name": None, "result": error()},
    ],
)
def test_what_is_not_a_failed_job_task_is_not_listed(meta: dict[str, Any]) -> None:
    assert failed_job({"task_id": "j1", **meta}) is None


def test_attempts_come_from_the_error_when_it_knows_them() -> None:
    meta = {"task_id": "j1", "status": "FAILURE", "name": "emp.mock", "retries": 0}
    found = failed_job({**meta, "result": error(context={"attempts": 4})})
    assert found is not None
    assert found.attempts == 4


def test_a_replay_is_a_new_job_naming_the_original() -> None:
    calls: list[tuple[Any, ...]] = []

    def submit(service: str, payload: Any, **kwargs: Any) -> Any:
        calls.append((service, payload, kwargs))
        return SimpleNamespace(id="new-1")

    assert replay.replay_job(job(metadata={"tag": "x"}), submit) == "new-1"
    assert calls == [
        (
            "mock",
            {"should_fail": True},
            {"ctx": {"prefix": "t/"}, "metadata": {"tag": "x", "replay_of": "j1"}},
        )
    ]


def test_the_listing_shows_no_payload_or_ctx() -> None:
    summary = job(metadata={"replay_of": "j0"}).summary()
    assert "payload" not in summary
    assert "ctx" not in summary
    assert summary["replay_of"] == "j0"


# --- the commands, in-process, with the backend replaced ---------------------------------------


@pytest.fixture
def listed(monkeypatch: pytest.MonkeyPatch) -> list[FailedJob]:
    jobs = [job(job_id="a"), job(job_id="b", failure_type="validation_error")]
    monkeypatch.setattr(replay, "failed_jobs", lambda *args: jobs)
    monkeypatch.setattr(replay_cmd, "_app", lambda: None)
    return jobs


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_failed_json_is_one_object_listing_every_job(listed: list[FailedJob]) -> None:
    result = run("failed", "--json")
    assert result.exit_code == 0
    assert [j["job_id"] for j in json.loads(result.stdout)["jobs"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--since", "soon"], "--since"),
        (["--service", "nope"], "--service"),
    ],
)
def test_a_bad_filter_is_one_line_naming_the_option(args: list[str], named: str) -> None:
    result = run("failed", *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(named)


@pytest.mark.parametrize("args", [[], ["j1", "--service", "mock"]])
def test_replay_needs_a_job_id_or_filters_not_both(args: list[str]) -> None:
    assert run("replay", *args).exit_code == 2


def test_replay_many_skips_what_cannot_succeed_and_says_why(
    listed: list[FailedJob], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "replay_job", lambda found, submit: f"new-{found.job_id}")
    result = run("replay", "--service", "mock", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["replayed"] == [{"job_id": "new-a", "replay_of": "a", "service": "mock"}]
    assert out["skipped"][0]["job_id"] == "b"
    assert "--force" in out["skipped"][0]["reason"]


def test_replay_exits_1_when_nothing_was_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "find_job", lambda app, job_id: ("completed", None))
    monkeypatch.setattr(replay_cmd, "_app", lambda: None)
    result = run("replay", "done-1")
    assert result.exit_code == 1
    assert (
        result.stderr
        == "skipped done-1: it is completed, not failed: only a failed job is replayed\n"
    )


# --- RabbitMQ dead letters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "payload", "ctx"),
    [
        ([[{"a": 1}], {"ctx": {"prefix": "p/"}, "metadata": None}, {}], {"a": 1}, {"prefix": "p/"}),
        ([[{"a": 1}, {"prefix": "p/"}], {}, {}], {"a": 1}, {"prefix": "p/"}),
    ],
)
def test_a_dead_lettered_message_is_a_failed_job_that_can_be_replayed(
    body: list[Any], payload: Any, ctx: Any
) -> None:
    death = {"reason": "delivery_limit", "time": datetime(2026, 12, 1, 11, 0)}
    headers = {"task": "emp.mock", "id": "d1", "retries": 2, "x-death": [death]}
    found = replay.dead_letter_job(headers, body, "mock.dead")
    assert found is not None
    assert (found.job_id, found.service, found.payload, found.ctx) == ("d1", "mock", payload, ctx)
    assert (found.failure_type, found.attempts) == ("system_error", 3)
    assert found.message == "dead-lettered by RabbitMQ to mock.dead (delivery_limit)"
    assert found.failed_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    assert replay_refusal("failed", found.failure_type, force=False) is None


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"task": "other.task", "id": "d1"}, [[{}], {}, {}]),
        ({"id": "d1"}, [[{}], {}, {}]),
        ({"task": "emp.mock", "id": "d1"}, {"not": "a celery body"}),
    ],
)
def test_a_dead_letter_that_is_not_a_job_message_is_not_a_job(
    headers: dict[str, Any], body: Any
) -> None:
    assert replay.dead_letter_job(headers, body, "mock.dead") is None


def test_dead_letters_are_refused_on_a_broker_that_has_none() -> None:
    app = SimpleNamespace(conf=SimpleNamespace(broker_url="redis://127.0.0.1:1/0"))
    with pytest.raises(ConnectorError, match="--dead-letters needs RabbitMQ"):
        replay.handle_dead_letters(app, lambda job: False)
