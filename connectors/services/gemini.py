"""Gemini connectors: text, image and image edit through `POST models/{model}:generateContent`.

The three services share one HTTPConnector and differ by a `GeminiMode` (image output or not,
image input or not, which model setting applies) and their payload model. Errors come back as a
google.rpc.Status and content blocks as HTTP 200; both are classified by the pure functions in
`gemini_errors`. Every `inlineData` output is saved through the asset saver.
Env: GEMINI_API_KEY (required), GEMINI_BASE_URL, GEMINI_TIMEOUT, GEMINI_TEXT_MODEL,
GEMINI_IMAGE_MODEL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.assets import AssetSaver, Base64Data, LazyAssetSaver, SavedAsset
from connectors.errors import ConnectorError, configuration_error, require_secret
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.http import (
    ApiKeyHeaderAuth,
    ApiProfile,
    CallObserver,
    HttpClient,
    HTTPConnector,
    HttpRequest,
    Probe,
    Timeouts,
)
from connectors.services.gemini_errors import (
    Finding,
    check_response,
    classify_error_body,
    image_parts,
    strip_inline_data,
)
from connectors.services.gemini_input import InputImageFetcher
from connectors.services.gemini_payloads import (
    GeminiImageEditPayload,
    GeminiImagePayload,
    GeminiTextPayload,
    request_body,
)

__all__ = [
    "GEMINI_API",
    "GeminiConnector",
    "GeminiImageConnector",
    "GeminiImageEditConnector",
    "GeminiMode",
    "GeminiSettings",
    "GeminiTextConnector",
    "refine_gemini_error",
]

API_VERSION = "v1beta"


class GeminiSettings(BaseSettings):
    """Gemini settings from the worker's environment (an empty variable counts as unset)."""

    model_config = SettingsConfigDict(env_prefix="GEMINI_", env_ignore_empty=True, extra="ignore")

    api_key: SecretStr | None = None
    base_url: str = "https://generativelanguage.googleapis.com/v1beta"
    timeout: float = Field(default=45.0, gt=0)
    text_model: str = "gemini-2.5-flash"
    image_model: str = "gemini-2.5-flash-image"


@dataclass(frozen=True)
class GeminiMode:
    """What a Gemini service asks for: image output, an input image, and its default model."""

    image_output: bool
    image_input: bool
    model_setting: str  # the GeminiSettings field naming the default model


def refine_gemini_error(
    error: ConnectorError, response: requests.Response, body: Any
) -> ConnectorError:
    """Reclassify a status-based error with the google.rpc.Status body, when it says more."""
    found = classify_error_body(body)
    if found is None:
        return error
    # RetryInfo (in the classification) wins; a Retry-After header (a proxy's) is the fallback.
    verdict, text = found
    return error.reclassified(verdict, f"HTTP {response.status_code} from {error.service}: {text}")


# Listing models is free and needs a valid key: a cheap, honest liveness check, sent through
# `send_probe`, so a redirect is not followed with the key on it.
GEMINI_API = ApiProfile(refine=refine_gemini_error, probe=Probe("models", params={"pageSize": "1"}))


def _settings() -> GeminiSettings:
    try:
        return GeminiSettings()
    except ValidationError as exc:
        names = sorted({f"GEMINI_{str(e['loc'][0]).upper()}" for e in exc.errors() if e["loc"]})
        message = f"Invalid Gemini setting: {', '.join(names)}"
        raise configuration_error(message, variables=names) from None


class GeminiConnector(HTTPConnector[GeminiTextPayload]):
    """generateContent over HTTP with `x-goog-api-key`; a service picks a mode and a payload."""

    service_type: ClassVar[str] = "gemini_text"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities(
        supportsBasicHealthCheck=True, basicHealthCheckEndpoint="/models"
    )
    payload_model: type[GeminiTextPayload] = GeminiTextPayload
    mode: ClassVar[GeminiMode] = GeminiMode(False, False, "text_model")

    def __init__(
        self,
        settings: GeminiSettings | None = None,
        *,
        assets: AssetSaver | None = None,
        image_fetcher: InputImageFetcher | None = None,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or _settings()
        key = require_secret(self.settings.api_key, "GEMINI_API_KEY", service=self.service_type)
        # Built from CLOUD_STORAGE_* on first save: a text reply never needs storage.
        self.assets: AssetSaver = assets or LazyAssetSaver()
        self.image_fetcher = image_fetcher or InputImageFetcher()
        client = HttpClient(
            self.service_type,
            self.settings.base_url,
            auth=ApiKeyHeaderAuth("x-goog-api-key", key),
            timeouts=timeouts or Timeouts(connect=10.0, read=self.settings.timeout),
            session=session,
            on_call=on_call,
            api=GEMINI_API,
        )
        super().__init__(client=client, **kwargs)

    def model_for(self, payload: GeminiTextPayload) -> str:
        """The payload's model, else this service's default from the settings."""
        return payload.model_id or str(getattr(self.settings, self.mode.model_setting))

    def build_request(self, job: JobData, payload: GeminiTextPayload) -> HttpRequest:
        image = None
        if self.mode.image_input:
            assert isinstance(payload, GeminiImageEditPayload)  # image_input modes use it
            image = self.image_fetcher.inline(payload, self.service_type)
        body = request_body(payload, image_output=self.mode.image_output, image=image)
        path = f"models/{self.model_for(payload)}:generateContent"
        return HttpRequest("POST", self.client.url(path), body)

    def parse_response(
        self, response: requests.Response, job: JobData, payload: GeminiTextPayload
    ) -> JobResult:
        body = self.client.json_body(response)
        failure = check_response(body, image_required=self.mode.image_output)
        if failure is not None:
            raise self._failure(failure, self._refusal_context(body))
        return self._result(body, job, payload)

    def _failure(self, found: Finding, context: dict[str, Any]) -> ConnectorError:
        verdict, message = found
        return verdict.error(message, status_code=200, service=self.service_type, context=context)

    def _refusal_context(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            return {"raw_response": body}
        first = (body.get("candidates") or [{}])[0]
        first = first if isinstance(first, dict) else {}
        return {
            "finish_reason": first.get("finishReason"),
            "finish_message": first.get("finishMessage"),
            "safety_ratings": first.get("safetyRatings"),
            "prompt_feedback": body.get("promptFeedback"),
            "raw_response": strip_inline_data(body),
        }

    def _result(self, body: dict[str, Any], job: JobData, payload: GeminiTextPayload) -> JobResult:
        model = self.model_for(payload)
        first = body["candidates"][0]  # check_response vouched for it
        parts = (first.get("content") or {}).get("parts") or []
        text = "".join(
            p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
        )
        saved = [self._save(blob, job) for blob in image_parts(first)]
        data: dict[str, Any] = {
            "content_type": "image" if saved else "text",
            "text": text,
            "finish_reason": first.get("finishReason"),
            "model_used": body.get("modelVersion") or model,
        }
        if saved:
            data.update(
                image_url=saved[0].url,
                images=[asset.url for asset in saved],
                mime_type=saved[0].mime_type,
            )
        return JobResult(
            success=True,
            data=data,
            metadata={
                "service": "gemini",
                "connector": self.service_type,
                "api_version": API_VERSION,
                "model": model,
                "model_version": body.get("modelVersion"),
                "response_id": body.get("responseId"),
                "usage": body.get("usageMetadata"),
            },
            output_files=[asset.output_file() for asset in saved],
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                service_job_id=body.get("responseId"),
                model_used=body.get("modelVersion") or model,
                processing_stats=body.get("usageMetadata"),
            ),
        )

    def _save(self, blob: Any, job: JobData) -> SavedAsset:
        mime = blob.get("mimeType") or blob.get("mime_type")
        return self.assets.save(
            Base64Data(str(blob["data"])), job=job, mime_type=mime, expect="image"
        )


class GeminiTextConnector(GeminiConnector):
    """Gemini text generation (service `gemini_text`)."""

    service_type: ClassVar[str] = "gemini_text"


class GeminiImageConnector(GeminiConnector):
    """Gemini image generation with IMAGE output saved as assets (service `gemini_image`)."""

    service_type: ClassVar[str] = "gemini_image"
    payload_model = GeminiImagePayload
    mode: ClassVar[GeminiMode] = GeminiMode(True, False, "image_model")


class GeminiImageEditConnector(GeminiConnector):
    """Gemini image editing: an input image by URL or base64 (`gemini_image_edit`)."""

    service_type: ClassVar[str] = "gemini_image_edit"
    payload_model = GeminiImageEditPayload
    mode: ClassVar[GeminiMode] = GeminiMode(True, True, "image_model")
