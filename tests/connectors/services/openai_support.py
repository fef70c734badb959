"""What the OpenAI connector tests share: constants, a fake clock, a stub saver, builders."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from connectors.assets import AssetSource, Base64Data, ExpectedKind, SavedAsset
from connectors.base import BaseConnector
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData
from connectors.services.openai_common import OpenAISettings
from connectors.services.openai_image import OpenAIImageConnector
from connectors.services.openai_responses import OpenAIResponsesConnector
from connectors.services.openai_text import OpenAITextConnector
from emp_tasks.sandbox.png import make_png
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, json_reply

__all__ = [
    "BASE",
    "CANCEL",
    "CHAT",
    "IMAGES",
    "KEY",
    "PNG_B64",
    "POLL",
    "RESPONSES",
    "SSE",
    "Connector",
    "FakeClock",
    "R",
    "StubSaver",
    "T",
    "err",
    "fails",
    "job",
    "kind",
    "make",
    "settings",
]

R = FailureReason
T = FailureType
KEY = "sk-unit-test-key-3f9a1c7e5d"
BASE = "https://api.openai.test/v1"
CHAT = f"{BASE}/chat/completions"
RESPONSES = f"{BASE}/responses"
POLL = f"{RESPONSES}/resp_1"
CANCEL = f"{POLL}/cancel"
IMAGES = f"{BASE}/images/generations"
SSE = {"content-type": "text/event-stream"}
PNG_B64 = base64.b64encode(make_png("unit", 16, 16)).decode()
Connector = OpenAITextConnector | OpenAIResponsesConnector | OpenAIImageConnector


class FakeClock:
    """A clock that moves only when the connector sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StubSaver:
    """An AssetSaver that records what it was given and pretends to store it."""

    def __init__(self) -> None:
        self.saved: list[tuple[AssetSource, str | None]] = []
        self.expects: list[str | None] = []

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        assert isinstance(source, Base64Data)
        data = base64.b64decode(source.data)
        self.saved.append((source, mime_type))
        self.expects.append(expect)
        key = f"emp/{job.id}_{len(self.saved)}.png"
        digest = hashlib.sha256(data).hexdigest()
        mime = mime_type or "image/png"
        return SavedAsset(
            url=f"https://cdn.test/{key}",
            key=key,
            mime_type=mime,
            size_bytes=len(data),
            sha256=digest,
        )


def settings(**extra: Any) -> OpenAISettings:
    return OpenAISettings(api_key=KEY, base_url=BASE, **extra)


def make(cls: type[Connector], transport: ScriptedTransport, **kwargs: Any) -> Any:
    return cls(settings(**kwargs.pop("settings", {})), session=transport.session(), **kwargs)


def job(service: str, **payload: Any) -> JobData:
    return JobData(id=f"job-{service}", type=service, payload=payload)


def fails(connector: BaseConnector, data: JobData) -> ConnectorError:
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data)
    assert KEY not in json.dumps(info.value.to_dict())
    return info.value


def kind(error: ConnectorError) -> tuple[FailureType, FailureReason, bool]:
    return error.failure_type, error.failure_reason, error.retryable


def err(status: int, code: str | None, kind_: str, message: str, **headers: str) -> Reply:
    body = {"error": {"message": message, "type": kind_, "param": None, "code": code}}
    return json_reply(body, status, headers)
