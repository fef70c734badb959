"""OpenAIImageConnector: the Images API, one blocking `POST /images/generations`.

GPT image models always answer with `data[].b64_json`; DALL-E models send a URL unless asked for
`response_format: b64_json`, which this connector asks for, so every image arrives as base64 and
is saved through the asset saver. A reply without base64 for an image is a response_error. A
safety rejection arrives as HTTP 400 `moderation_blocked` / `content_policy_violation` and is
classified as a refusal by the shared error mapping.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from connectors.assets import AssetSaver, Base64Data, LazyAssetSaver
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, OutputFile, ServiceMetadata
from connectors.protocol.http import CallObserver, HTTPConnector, HttpRequest, Timeouts
from connectors.services.openai_common import (
    OPENAI_CAPABILITIES,
    OpenAISettings,
    image_fields,
    image_mime,
    openai_client,
    strip_base64,
)

__all__ = ["OpenAIImageConnector", "OpenAIImagePayload"]

# Fields of the reply echoed into the result as they are.
_ECHOED = ("size", "quality", "output_format", "background")


class OpenAIImagePayload(BaseModel):
    """An image job: the prompt and the Images API's generation knobs."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(min_length=1, pattern=r"\S")
    model: StrictStr | None = Field(default=None, min_length=1)
    n: int | None = Field(default=None, ge=1, le=10)
    size: StrictStr | None = None
    quality: StrictStr | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Literal["transparent", "opaque", "auto"] | None = None
    moderation: Literal["low", "auto"] | None = None
    style: Literal["vivid", "natural"] | None = None
    user: StrictStr | None = None
    save_assets: StrictBool = True

    def body(self, default_model: str) -> dict[str, Any]:
        """The request body: every knob that was given, plus the model."""
        body = self.model_dump(exclude_none=True, exclude={"save_assets"})
        body.setdefault("model", default_model)
        if str(body["model"]).startswith("dall-e"):
            body["response_format"] = "b64_json"  # DALL-E defaults to a URL that expires
        return body


class OpenAIImageConnector(HTTPConnector[OpenAIImagePayload]):
    """Generates images with the Images API and saves each one as an asset."""

    service_type: ClassVar[str] = "openai_image"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = OPENAI_CAPABILITIES
    payload_model = OpenAIImagePayload

    def __init__(
        self,
        settings: OpenAISettings | None = None,
        *,
        assets: AssetSaver | None = None,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or OpenAISettings()
        self.assets: AssetSaver = assets or LazyAssetSaver()
        read = self.settings.image_timeout_seconds
        client = openai_client(
            self.settings,
            self.service_type,
            read,
            session=session,
            timeouts=timeouts,
            on_call=on_call,
        )
        super().__init__(client=client, **kwargs)

    def build_request(self, job: JobData, payload: OpenAIImagePayload) -> HttpRequest:
        body = payload.body(self.settings.image_model)
        return HttpRequest("POST", self.client.url("images/generations"), json=body)

    def parse_response(
        self, response: requests.Response, job: JobData, payload: OpenAIImagePayload
    ) -> JobResult:
        body = self.client.json_body(response)
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise self._missing("no `data` images in the reply", body)
        encoded = [item.get("b64_json") if isinstance(item, dict) else None for item in items]
        if not all(isinstance(b64, str) and b64 for b64 in encoded):
            raise self._missing("an image came without `b64_json`", body)
        fmt = body.get("output_format") if isinstance(body.get("output_format"), str) else None
        images, files = self._images(items, job, fmt, inline=not payload.save_assets)
        model = payload.model or self.settings.image_model
        data: dict[str, Any] = {
            "content_type": "image",
            "model_used": model,
            **image_fields(images),
            "usage": body.get("usage") or {},
            **{key: body[key] for key in _ECHOED if key in body},
        }
        return JobResult(
            data=data,
            metadata={"service": "openai", "connector": self.service_type},
            output_files=files,
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                model_used=model,
                processing_stats={"usage": data["usage"], "images": len(images)},
            ),
        )

    def _images(
        self, items: list[dict[str, Any]], job: JobData, fmt: str | None, *, inline: bool
    ) -> tuple[list[dict[str, Any]], list[OutputFile]]:
        images: list[dict[str, Any]] = []
        files: list[OutputFile] = []
        for item in items:
            b64 = str(item["b64_json"])
            entry: dict[str, Any] = {"mime_type": image_mime(b64, fmt)}
            if item.get("revised_prompt"):
                entry["revised_prompt"] = item["revised_prompt"]
            if inline:
                entry["image_base64"] = b64
            else:
                asset = self.assets.save(
                    Base64Data(b64), job=job, mime_type=entry["mime_type"], expect="image"
                )
                entry.update(url=asset.url, mime_type=asset.mime_type)
                files.append(asset.output_file())
            images.append(entry)
        return images, files

    def _missing(self, problem: str, body: Any) -> ConnectorError:
        return Classification(
            FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA
        ).error(
            f"OpenAI Images reply unusable: {problem}",
            service=self.service_type,
            context={"raw_response": strip_base64(body)},
        )
