"""What the Gemini connector unit tests share: connectors over a scripted transport, replies."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pytest

from connectors.assets import (
    AssetSource,
    ExpectedKind,
    SavedAsset,
)
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData
from connectors.services.gemini import (
    GeminiConnector,
    GeminiSettings,
)
from emp_tasks.sandbox.png import make_png
from tests.connectors.fakes import (
    FakeAdapter,
    Reply,
    fake_session,
    json_reply,
)

R = FailureReason
T = FailureType
KEY = "gemini-unit-test-key-3f9a1c7d"
BASE = "https://gemini.test/v1beta"
PNG = make_png("unit", 8, 8)
PNG_B64 = base64.b64encode(PNG).decode()
IMAGE_HOST = "images.example"


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the service's variables the developer's shell may set."""
    for name in ("API_KEY", "BASE_URL", "TIMEOUT", "TEXT_MODEL", "IMAGE_MODEL"):
        monkeypatch.delenv(f"GEMINI_{name}", raising=False)


class StubSaver:
    """An AssetSaver that records what it was asked to save and invents a URL for it."""

    def __init__(self, fail: ConnectorError | None = None) -> None:
        self.saved: list[tuple[AssetSource, str | None]] = []
        self.expects: list[str | None] = []
        self.fail = fail

    def save(
        self,
        source: AssetSource,
        *,
        job: JobData,
        mime_type: str | None = None,
        expect: ExpectedKind | None = None,
    ) -> SavedAsset:
        if self.fail is not None:
            raise self.fail
        self.saved.append((source, mime_type))
        self.expects.append(expect)
        n = len(self.saved)
        return SavedAsset(
            url=f"https://cdn.test/{job.id}_{n}.png",
            key=f"emp/{job.id}_{n}.png",
            mime_type=mime_type or "image/png",
            size_bytes=len(PNG),
            sha256="ab" * 32,
        )


Connector = type[GeminiConnector]


def make(
    cls: Connector, *script: Reply | BaseException, **kwargs: Any
) -> tuple[GeminiConnector, FakeAdapter]:
    session, adapter = fake_session(*script)
    kwargs.setdefault("assets", StubSaver())
    connector = cls(GeminiSettings(api_key=KEY, base_url=BASE), session=session, **kwargs)
    return connector, adapter


def job(service: str = "gemini_text", **payload: Any) -> JobData:
    return JobData(id="job-gem-1", type=service, payload=payload)


def reply_body(*parts: dict[str, Any], finish: str = "STOP", **extra: Any) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8},
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": "resp-123",
        **extra,
    }


def image_part(data: str = PNG_B64) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": data}}


def fail(cls: Connector, reply: Reply | BaseException, data: JobData) -> ConnectorError:
    connector, _ = make(cls, reply)
    with pytest.raises(ConnectorError) as info:
        connector.process_job(data)
    return info.value


def assert_key_absent(error: ConnectorError) -> None:
    for text in (
        str(error),
        repr(error),
        json.dumps(error.to_dict()),
        json.dumps(error.args),
        repr(pickle.loads(pickle.dumps(error)).to_dict()),
    ):
        assert KEY not in text


def rpc(code: int, status: str, message: str = "boom", *details: dict[str, Any]) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json_reply({"error": error}, code)


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def quota(quota_id: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "m", "quotaId": quota_id}],
    }


KEY_INFO = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
PER_DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
