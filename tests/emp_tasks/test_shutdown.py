"""wait_for_jobs: the soft-shutdown bound, on an injected clock."""

from __future__ import annotations

from dataclasses import dataclass

from emp_tasks.shutdown import wait_for_jobs


@dataclass
class Running:
    id: str
    acknowledged: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_returns_at_once_when_nothing_runs() -> None:
    clock = Clock()
    assert wait_for_jobs(list, 60, clock=clock, sleep=clock.sleep) == []
    assert clock.now == 0


def test_returns_as_soon_as_the_jobs_are_acked_not_at_the_timeout() -> None:
    clock = Clock()
    job = Running("a")

    def running() -> list[Running]:
        if clock.now >= 2:
            job.acknowledged = True
        return [job]

    assert wait_for_jobs(running, 60, clock=clock, sleep=clock.sleep) == []
    assert 2 <= clock.now < 2.2


def test_returns_the_jobs_still_running_at_the_timeout() -> None:
    clock = Clock()
    done, slow = Running("done", acknowledged=True), Running("slow")
    left = wait_for_jobs(lambda: [done, slow], 5, clock=clock, sleep=clock.sleep)
    assert [req.id for req in left] == ["slow"]
    assert 5 <= clock.now < 5.2
