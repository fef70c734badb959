"""OpenAIResponsesConnector: the Responses API in background mode, submitted then polled.

`POST /responses` with `background: true` answers at once with a queued Response; the connector
polls `GET /responses/{id}` until a terminal status (see `openai_responses_output` for how each
one is classified) and cancels with `POST /responses/{id}/cancel` when the deadline passes.
Images (`image_generation_call` results, base64) are saved through the asset saver and the
result carries their URLs; base64 never stays in the result (`[BASE64_DATA_REMOVED]` in
`raw_output`) unless the payload sets `save_assets: false`, which asks for the bytes inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import requests
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from connectors.assets import AssetSaver, Base64Data, LazyAssetSaver, SavedAsset
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.http import HttpRequest
from connectors.protocol.polling import PollingHTTPConnector, PollPolicy, PollStatus
from connectors.services.openai_common import (
    OPENAI_CAPABILITIES,
    OpenAISettings,
    connector_kwargs,
    image_fields,
    image_mime,
    probe_models,
    refine_openai_error,
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

__all__ = [
    "JOB_KEYS",
    "NOT_SENT",
    "OpenAIResponsesConnector",
    "OpenAIResponsesPayload",
    "ResponsesRequest",
    "request_body",
]

# Job-side keys of the original's payloads: accepted (at the top level or in `dynamic_json`) and
# never sent to OpenAI. `stream` is among them: this connector polls, a stream would go unread.
_ENVELOPE = ("ctx", "bucket", "prefix", "filename", "provider", "cdnUrl", "workflow_name")
JOB_KEYS = frozenset((*_ENVELOPE, "user_id", "generation_context", "stream"))
NOT_SENT = JOB_KEYS | {"save_assets", "dynamic_json"}
_UNION_SHAPES = {
    "input": "must be text or a list of input items (objects)",
    "tool_choice": "must be a mode ('none', 'auto', 'required') or a tool object",
}


class ResponsesRequest(BaseModel):
    """The `POST /responses` parameters this connector forwards: an allow-list, so a typo fails
    before any call. Plain types are checked; OpenAI checks the inside of `tools`, `reasoning`,
    `text` and `prompt`. `background` is accepted but always sent as true."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, min_length=1)
    input: StrictStr | list[dict[str, Any]] | None = None
    instructions: StrictStr | None = None
    prompt: dict[str, Any] | None = None  # a stored prompt template: {"id", "version", ...}
    tools: list[dict[str, Any]] | None = None
    tool_choice: StrictStr | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    max_tool_calls: StrictInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    max_output_tokens: StrictInt | None = Field(default=None, ge=1)
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    include: list[StrictStr] | None = None
    metadata: dict[str, StrictStr] | None = Field(default=None, max_length=16)
    previous_response_id: StrictStr | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: StrictStr | None = None
    user: StrictStr | None = None
    safety_identifier: StrictStr | None = None
    prompt_cache_key: StrictStr | None = None
    store: StrictBool | None = None
    background: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_job_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {key: value for key, value in data.items() if key not in JOB_KEYS}
        return data

    @field_validator("input", "tool_choice", mode="wrap")
    @classmethod
    def _one_of(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # One plain message naming the field, not one error per member of the union.
        try:
            value = handler(value)
        except ValidationError:
            raise ValueError(_UNION_SHAPES[str(info.field_name)]) from None
        empty = not (value.strip() if isinstance(value, str) else value)
        if info.field_name == "input" and value is not None and empty:
            raise ValueError("must not be empty")
        return value

    @field_validator("store")
    @classmethod
    def _stored(cls, value: bool | None) -> bool | None:
        if value is False:
            raise ValueError("must be true or left out: background mode needs a stored response")
        return value

    def has_input(self) -> bool:
        return self.input is not None or self.prompt is not None


REQUEST_FIELDS = frozenset(ResponsesRequest.model_fields)


class OpenAIResponsesPayload(ResponsesRequest):
    """A Responses job: `input` (+ `model`, `tools`, ...) or a whole request in `dynamic_json`."""

    # A whole request (the original's way to pass one): the same rules, and `input` is required.
    dynamic_json: ResponsesRequest | None = None
    save_assets: StrictBool = True

    @field_validator("dynamic_json")
    @classmethod
    def _whole(cls, value: ResponsesRequest | None, info: ValidationInfo) -> Any:
        beside = sorted(key for key in REQUEST_FIELDS if info.data.get(key) is not None)
        if value is not None and beside:
            raise ValueError(f"'{beside[0]}' belongs inside 'dynamic_json', not beside it")
        if value is not None and not value.has_input():
            raise ValueError("the request needs 'input' (or a 'prompt' template)")
        return value

    @model_validator(mode="after")
    def _has_request(self) -> OpenAIResponsesPayload:
        if self.dynamic_json is None and not self.has_input():
            raise ValueError("'input' is required (or a complete request in 'dynamic_json')")
        return self

    def request(self) -> ResponsesRequest:
        """The request parameters: `dynamic_json` when given, else the payload itself."""
        return self.dynamic_json if self.dynamic_json is not None else self


def request_body(payload: OpenAIResponsesPayload, default_model: str) -> dict[str, Any]:
    """The `POST /responses` body: the validated parameters, a default model, background on."""
    params = payload.request()
    body = params.model_dump(include=set(REQUEST_FIELDS), exclude_unset=True, exclude_none=True)
    body.setdefault("model", default_model)
    body["background"] = True
    return body


class OpenAIResponsesConnector(PollingHTTPConnector):
    """Runs a background Response, polls it, and saves any generated images."""

    service_type: ClassVar[str] = "openai_responses"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = OPENAI_CAPABILITIES.model_copy(
        update={"supportsJobStatusQuery": True, "supportsJobCancellation": True}
    )
    payload_model: ClassVar[type[BaseModel]] = OpenAIResponsesPayload

    def __init__(self, settings: OpenAISettings | None = None, **kwargs: Any) -> None:
        self.settings = settings or OpenAISettings()
        self.assets: AssetSaver = kwargs.pop("assets", None) or LazyAssetSaver()
        kwargs.setdefault(
            "poll_policy",
            PollPolicy(
                interval=self.settings.responses_poll_interval_seconds,
                deadline=self.settings.responses_timeout_seconds,
            ),
        )
        read = self.settings.timeout_seconds
        super().__init__(**connector_kwargs(self.settings, self.service_type, read, kwargs))

    def _payload(self, job: JobData) -> OpenAIResponsesPayload:
        return self.parse_payload(job, OpenAIResponsesPayload)

    def build_request(self, job: JobData) -> HttpRequest:
        body = request_body(self._payload(job), self.settings.responses_model)
        return HttpRequest("POST", self.url("responses"), json=body)

    def extract_job_id(self, response: requests.Response, job: JobData) -> str:
        body = self.json_body(response)
        return str(body.get("id") or "") if isinstance(body, dict) else ""

    def build_poll_request(self, service_job_id: str, job: JobData) -> HttpRequest:
        return HttpRequest("GET", self.url(f"responses/{service_job_id}"))

    def build_cancel_request(self, service_job_id: str, job: JobData) -> HttpRequest | None:
        return HttpRequest("POST", self.url(f"responses/{service_job_id}/cancel"))

    def check_status(self, response: requests.Response, job: JobData) -> PollStatus:
        return poll_status(self.json_body(response), self.service_type)

    def build_result(self, status: PollStatus, job: JobData) -> JobResult:
        body: dict[str, Any] = status.result
        output = parse_output(body)
        context = {"response_id": body.get("id"), "raw_output": strip_base64(body.get("output"))}
        refused = refusal_in(output)
        if refused is not None:
            raise refusal_error(refused, service=self.service_type, context=context)
        if not output.images and not output.text:
            raise self._missing("completed with neither text nor an image", context)
        saved = self._images(output, job, context)
        return self._result(body, output, saved, job)

    def _images(
        self, output: ResponseOutput, job: JobData, context: dict[str, Any]
    ) -> list[dict[str, Any]]:
        failed = [call for call in output.images if call.result is None]
        if failed:
            why = output.text or f"image call {failed[0].id} ended {failed[0].status}"
            raise self._missing(f"Image generation failed: {why}", context)
        inline = not self._payload(job).save_assets
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
        job: JobData,
    ) -> JobResult:
        model = (
            body.get("model") or self._payload(job).request().model or self.settings.responses_model
        )
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
        return ConnectorError(
            f"OpenAI response unusable: {problem}",
            failure_type=FailureType.RESPONSE_ERROR,
            failure_reason=FailureReason.MISSING_EXPECTED_DATA,
            service=self.service_type,
            context=context,
        )

    def refine_error(
        self, error: ConnectorError, response: requests.Response, body: Any
    ) -> ConnectorError:
        return refine_openai_error(error, response, body)

    def health_probe(self) -> bool:
        return probe_models(self)
