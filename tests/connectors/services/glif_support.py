"""What the GlifConnector unit tests share: a connector over a scripted transport, jobs, bodies."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData, JobResult
from connectors.services.glif import (
    GlifConnector,
    GlifSettings,
)
from tests.connectors.fakes import (
    FakeAdapter,
    Reply,
    StubSaver,
    fake_session,
)

R = FailureReason
T = FailureType
TOKEN = "glif-unit-test-token-5e6f7a8b"
WORKFLOW = "clxyz123workflow"
IMAGE_URL = "https://res.cloudinary.com/demo/glif-run-outputs/abc.png"


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the service's variables the developer's shell may set."""
    for name in (
        "GLIF_API_TOKEN",
        "GLIF_BASE_URL",
        "GLIF_TIMEOUT_SECONDS",
        "GLIF_RETRY_ATTEMPTS",
        "GLIF_MAX_CONCURRENT_JOBS",
        "GLIF_HEALTH_CHECK_WORKFLOW_ID",
    ):
        monkeypatch.delenv(name, raising=False)


def ticking_clock(*readings: float) -> Callable[[], float]:
    values: Iterator[float] = iter(readings)
    return lambda: next(values)


def make(
    *script: Reply | BaseException, settings: GlifSettings | None = None, **kwargs: Any
) -> tuple[GlifConnector, FakeAdapter]:
    session, adapter = fake_session(*script)
    kwargs.setdefault("assets", StubSaver())
    connector = GlifConnector(settings or GlifSettings(api_token=TOKEN), session=session, **kwargs)
    return connector, adapter


def job(**payload: Any) -> JobData:
    return JobData(id="job-glif-1", type="glif", payload=payload)


def ok_job(**extra: Any) -> JobData:
    # Output-shape tests see the provider's URLs; the asset tests below opt in to saving.
    extra.setdefault("save_assets", False)
    return job(workflow_id=WORKFLOW, inputs=["a cat in a hat"], **extra)


def run(reply: Reply | BaseException, data: JobData | None = None) -> JobResult:
    connector, _ = make(reply)
    return connector.process_job(data or ok_job())


def fail(
    reply: Reply | BaseException, data: JobData | None = None
) -> tuple[ConnectorError, FakeAdapter]:
    connector, adapter = make(reply)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data or ok_job())
    return info.value, adapter


def image_body(**extra: Any) -> dict[str, Any]:
    return {
        "id": "run-1",
        "inputs": {"prompt": "a cat in a hat"},
        "output": IMAGE_URL,
        "outputFull": {"type": "IMAGE", "value": IMAGE_URL},
        "price": "2.1000875",
        "nodes": [{"name": "prompt", "output": "a cat in a hat"}],
        **extra,
    }


def assert_token_absent(error: ConnectorError) -> None:
    for text in (
        str(error),
        repr(error),
        json.dumps(error.to_dict()),
        json.dumps(error.args),
        repr(pickle.loads(pickle.dumps(error)).to_dict()),
    ):
        assert TOKEN not in text
