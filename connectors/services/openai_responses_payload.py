"""The Responses API payload: which `POST /responses` parameters a job may set, and the body.

An allow-list (`ResponsesRequest`), so a typo in a payload fails at submit, before any call.
A job gives the parameters at the top level or, as the original did, a whole request in
`dynamic_json`; the original's job-side keys (`ctx`, `bucket`, `prefix`, ...) are accepted
either way and never sent. `background` is always sent as true: the connector polls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

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

__all__ = [
    "JOB_KEYS",
    "NOT_SENT",
    "REQUEST_FIELDS",
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
