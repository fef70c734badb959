"""Journal: entries in a result backend, large ones staged as files, never raising."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emp_tasks.journal import JOURNAL_STATE, BackendStore, Journal


class FakeBackend:
    """The three calls of Celery's backend API the SQL-side store uses, over a dict."""

    def __init__(self) -> None:
        self.metas: dict[str, dict[str, Any]] = {}
        self.down = False

    def store_result(self, task_id: str, result: Any, state: str) -> None:
        self._check()
        self.metas[task_id] = {"status": state, "result": result}

    def get_task_meta(self, task_id: str) -> dict[str, Any]:
        self._check()
        return self.metas.get(task_id, {"status": "PENDING", "result": None})

    def forget(self, task_id: str) -> None:
        self._check()
        self.metas.pop(task_id, None)

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("backend unreachable")


def journal(tmp_path: Path, backend: FakeBackend, fresh: bool = False) -> Journal:
    return Journal(BackendStore(backend), "job-9", tmp_path, 1024, fresh=fresh)


def stored(backend: FakeBackend, name: str) -> Any:
    return backend.metas[BackendStore.entry_id("job-9", name)]


def test_a_small_entry_lives_in_the_backend_under_the_jobs_derived_id(tmp_path: Path) -> None:
    backend = FakeBackend()
    journal(tmp_path, backend).save("answer", {"body": "abc"})
    assert stored(backend, "answer") == {"status": JOURNAL_STATE, "result": '{"body":"abc"}'}
    assert journal(tmp_path, backend).load("answer") == {"body": "abc"}


def test_a_large_entry_is_staged_as_a_file_and_the_backend_keeps_only_its_path(
    tmp_path: Path,
) -> None:
    backend = FakeBackend()
    big = {"body": "x" * 5000}
    journal(tmp_path, backend).save("answer", big)
    assert '"staged"' in stored(backend, "answer")["result"]
    assert "xxxx" not in stored(backend, "answer")["result"]
    assert journal(tmp_path, backend).load("answer") == big


def test_a_staged_file_gone_reads_as_no_entry(tmp_path: Path) -> None:
    backend = FakeBackend()
    journal(tmp_path, backend).save("answer", {"body": "x" * 5000})
    for staged in tmp_path.rglob("answer.json"):
        staged.unlink()
    assert journal(tmp_path, backend).load("answer") is None


def test_drop_forgets_the_entry_and_its_staged_file(tmp_path: Path) -> None:
    backend = FakeBackend()
    kept = journal(tmp_path, backend)
    kept.save("answer", {"body": "x" * 5000})
    kept.drop("answer")
    assert kept.load("answer") is None
    assert not list(tmp_path.rglob("answer.json"))


def test_paid_calls_add_up_across_attempts(tmp_path: Path) -> None:
    backend = FakeBackend()
    journal(tmp_path, backend, fresh=True).paid_call()
    second = journal(tmp_path, backend)  # the next attempt, maybe on another worker
    second.paid_call()
    assert second.provider_calls() == 2
    assert journal(tmp_path, backend).provider_calls() == 2


def test_a_fresh_delivery_reads_nothing(tmp_path: Path) -> None:
    backend = FakeBackend()
    journal(tmp_path, backend).save("answer", {"body": "old"})
    backend.down = True  # any read would fail loudly in the log; a fresh job makes none
    fresh = journal(tmp_path, backend, fresh=True)
    assert fresh.load("answer") is None
    assert fresh.provider_calls() == 0


@pytest.mark.parametrize("text", [None, "-1", "x", ""])
def test_an_unreadable_count_starts_from_zero(tmp_path: Path, text: str | None) -> None:
    backend = FakeBackend()
    if text is not None:
        backend.metas[BackendStore.entry_id("job-9", "provider_calls")] = {
            "status": JOURNAL_STATE,
            "result": text,
        }
    assert journal(tmp_path, backend).provider_calls() == 0


def test_a_task_result_under_the_same_id_is_not_read_as_an_entry(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.metas[BackendStore.entry_id("job-9", "answer")] = {"status": "SUCCESS", "result": "{}"}
    assert journal(tmp_path, backend).load("answer") is None


def test_a_backend_that_is_down_loses_the_checkpoint_not_the_job(tmp_path: Path) -> None:
    backend = FakeBackend()
    backend.down = True
    kept = journal(tmp_path, backend)
    kept.save("answer", {"body": "abc"})
    kept.drop("answer")
    kept.paid_call()
    assert kept.load("answer") is None
    assert kept.provider_calls() == 1  # counted in memory for this attempt's result
