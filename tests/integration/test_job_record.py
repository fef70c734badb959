"""job_record on a job whose state moves on while the record is being read."""

from __future__ import annotations

from typing import Any

import pytest
from celery.result import AsyncResult

from connectors.errors import ConnectorError
from emp_tasks import client
from tests.integration.processes import RedisServer

pytestmark = pytest.mark.integration


class MovingResult(AsyncResult):  # type: ignore[misc]
    """PROGRESS when asked for its state; RETRY (info: the exception) from the next read on."""

    def __init__(self) -> None:
        super().__init__("job-moving", app=client.app)
        self.reads = 0

    @property
    def state(self) -> str:
        return "PROGRESS"

    @property
    def info(self) -> Any:
        self.reads += 1
        if self.reads == 1:
            return {"progress": 10, "message": "Submitting request"}
        return ConnectorError("rate limited", failure_type="rate_limit")

    @property
    def name(self) -> str:
        return "emp.glif"

    @property
    def retries(self) -> None:
        return None


def test_a_job_that_moves_on_mid_read_gives_a_record_from_one_read(
    redis_server: RedisServer,
) -> None:
    record = client.job_record(MovingResult())
    assert record["status"] == "running"
    assert record["progress"] == {"progress": 10, "message": "Submitting request"}
