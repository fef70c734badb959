"""OpenAIResponsesConnector: the Responses API in background mode, submitted then polled.

`POST /responses` with `background: true` answers at once with a queued Response; the connector
polls `GET /responses/{id}` until a terminal status (see `openai_responses_output` for how each
one is classified) and cancels with `POST /responses/{id}/cancel` when the deadline passes.
Images (`image_generation_call` results, base64) are saved through the asset saver and the
result carries their URLs; base64 never stays in the result (`[BASE64_DATA_REMOVED]` in
`raw_output`) unless the payload sets `save_assets: false`, which asks for the bytes inline.
What a payload may contain, and the body it becomes, is `openai_responses_payload`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from connectors.assets import AssetSaver, Base64Data, LazyAssetSaver, SavedAsset
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.http import CallObserver, HttpRequest, Timeouts
from connectors.protocol.polling import PollingHTTPConnector, PollPolicy, PollStatus
from connectors.services.openai_common import (
    OPENAI_CAPABILITIES,
    OpenAISettings,
    image_fields,
    image_mime,
    openai_client,
    refusal_error,
    strip_base64,
)
from connectors.services.openai_responses_output import (
    ImageCall,
    ResponseOutput,
    parse_output,
    poll_status,
    refusal_in,
)
from connectors.services.openai_responses_payload import (
    JOB_KEYS,
    NOT_SENT,
    OpenAIResponsesPayload,
    ResponsesRequest,
    request_body,
)

__all__ = [
    "JOB_KEYS",
    "NOT_SENT",
    "OpenAIResponsesConnector",
    "OpenAIResponsesPayload",
    "ResponsesRequest",
    "request_body",
]


class OpenAIResponsesConnector(PollingHTTPConnector[OpenAIResponsesPayload]):
    """Runs a background Response, polls it, and saves any generated images."""

    service_type: ClassVar[str] = "openai_responses"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = OPENAI_CAPABILITIES.model_copy(
        update={"supportsJobStatusQuery": True, "supportsJobCancellation": True}
    )
    payload_model = OpenAIResponsesPayload

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
        kwargs.setdefault(
            "poll_policy",
            PollPolicy(
                interval=self.settings.responses_poll_interval_seconds,
                deadline=self.settings.responses_timeout_seconds,
            ),
        )
        read = self.settings.timeout_seconds
        client = openai_client(
            self.settings,
            self.service_type,
            read,
            session=session,
            timeouts=timeouts,
            on_call=on_call,
        )
        super().__init__(client=client, **kwargs)

    def build_request(self, job: JobData, payload: OpenAIResponsesPayload) -> HttpRequest:
        body = request_body(payload, self.settings.responses_model)
        return HttpRequest("POST", self.client.url("responses"), json=body)

    def extract_job_id(self, response: requests.Response, job: JobData) -> str:
        body = self.client.json_body(response)
        return str(body.get("id") or "") if isinstance(body, dict) else ""

    def build_poll_request(self, service_job_id: str, job: JobData) -> HttpRequest:
        return HttpRequest("GET", self.client.url(f"responses/{service_job_id}"))

    def build_cancel_request(self, service_job_id: str, job: JobData) -> HttpRequest | None:
        return HttpRequest("POST", self.client.url(f"responses/{service_job_id}/cancel"))

    def check_status(self, response: requests.Response, job: JobData) -> PollStatus:
        return poll_status(self.client.json_body(response), self.service_type)

    def build_result(
        self, status: PollStatus, job: JobData, payload: OpenAIResponsesPayload
    ) -> JobResult:
        body: dict[str, Any] = status.result
        output = parse_output(body)
        context = {
            "response_id": body.get("id"),
            "raw_output": strip_base64(body.get("output")),
            "usage": body.get("usage"),  # a refusal after generation was billed: its cost
            "model": body.get("model"),
        }
        refused = refusal_in(output)
        if refused is not None:
            raise refusal_error(refused, service=self.service_type, context=context)
        if not output.images and not output.text:
            raise self._missing("completed with neither text nor an image", context)
        saved = self._images(output, job, context, inline=not payload.save_assets)
        model = body.get("model") or payload.request().model or self.settings.responses_model
        return self._result(body, output, saved, model)

    def _images(
        self, output: ResponseOutput, job: JobData, context: dict[str, Any], *, inline: bool
    ) -> list[dict[str, Any]]:
        failed = [call for call in output.images if call.result is None]
        if failed:
            why = output.text or f"image call {failed[0].id} ended {failed[0].status}"
            raise self._missing(f"Image generation failed: {why}", context)
        return [self._image(call, job, inline) for call in output.images]

    def _image(self, call: ImageCall, job: JobData, inline: bool) -> dict[str, Any]:
        assert call.result is not None  # checked by _images
        mime = image_mime(call.result, call.output_format)
        entry: dict[str, Any] = {"id": call.id, "mime_type": mime}
        if call.revised_prompt:
            entry["revised_prompt"] = call.revised_prompt
        if inline:
            return {**entry, "image_base64": call.result}
        asset: SavedAsset = self.assets.save(
            Base64Data(call.result), job=job, mime_type=mime, expect="image"
        )
        return {**entry, "url": asset.url, "mime_type": asset.mime_type, "asset": asset}

    def _result(
        self,
        body: dict[str, Any],
        output: ResponseOutput,
        images: list[dict[str, Any]],
        model: str,
    ) -> JobResult:
        data: dict[str, Any] = {
            "content_type": "image" if images else "text",
            "openai_response_id": body.get("id"),
            "model_used": model,
            "usage": body.get("usage") or {},
            "text": output.text,
            "raw_output": strip_base64(body.get("output")),
        }
        assets = [entry.pop("asset") for entry in images if "asset" in entry]
        if images:
            data.update(image_fields(images))
        return JobResult(
            data=data,
            metadata={"service": "openai", "connector": self.service_type},
            output_files=[asset.output_file() for asset in assets],
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                service_job_id=body.get("id"),
                model_used=model,
                processing_stats={"usage": body.get("usage") or {}},
            ),
        )

    def _missing(self, problem: str, context: dict[str, Any]) -> ConnectorError:
        return Classification(
            FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA
        ).error(f"OpenAI response unusable: {problem}", service=self.service_type, context=context)
