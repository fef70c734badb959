"""OpenAITextConnector: Chat Completions, streamed over SSE, folded into one text result.

The request always streams with `stream_options.include_usage`, so the last chunk before
`data: [DONE]` carries the token usage. A stream without `[DONE]` or without a finish_reason was
cut short and fails retryably; an `{"error": ...}` chunk under HTTP 200 is classified like an
error body. `finish_reason: content_filter` and a `refusal` delta are generation refusals. A
polite "I can't help with that" in the text itself is returned as the answer: it is what the
chat model said (the original text connector did the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from connectors.errors import ConnectorError
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.http import CallObserver, HttpRequest, Timeouts
from connectors.protocol.streaming import SSEDecoder, SSEEvent, StreamingHTTPConnector, stream_error
from connectors.services.openai_common import (
    OPENAI_CAPABILITIES,
    OpenAISettings,
    classify_openai_error,
    error_info,
    openai_client,
    refusal_error,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "ChatMessage",
    "OpenAITextConnector",
    "OpenAITextPayload",
    "TextStream",
    "fold_chunk",
]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


class ChatMessage(BaseModel):
    """One chat message: a role and text (or content parts); extra keys pass through."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[dict[str, Any]] | None = None


class OpenAITextPayload(BaseModel):
    """A chat job: `messages`, or a `prompt` with an optional `system_prompt`; sampling knobs."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    prompt: StrictStr | None = Field(default=None, min_length=1)
    system_prompt: StrictStr | None = None
    model: StrictStr | None = Field(default=None, min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @model_validator(mode="after")
    def _one_source(self) -> OpenAITextPayload:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        if self.system_prompt is not None and self.messages is not None:
            raise ValueError("'system_prompt' goes with 'prompt'; put it in 'messages' instead")
        return self

    def chat_messages(self) -> list[dict[str, Any]]:
        """The `messages` array to send."""
        if self.messages is not None:
            return [m.model_dump(exclude_none=True) for m in self.messages]
        system = self.system_prompt or DEFAULT_SYSTEM_PROMPT
        return [{"role": "system", "content": system}, {"role": "user", "content": self.prompt}]


@dataclass
class TextStream:
    """What the chunks of one completion add up to."""

    parts: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    completion_id: str | None = None
    model: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None


def fold_chunk(state: TextStream, data: dict[str, Any]) -> TextStream:
    """Add one `chat.completion.chunk` to the state (pure apart from mutating `state`)."""
    state.completion_id = state.completion_id or data.get("id")
    state.model = data.get("model") or state.model
    if isinstance(data.get("usage"), dict):
        state.usage = data["usage"]
    for choice in data.get("choices") or []:
        if choice.get("index", 0) != 0:
            continue  # n > 1 is not offered; only the first choice is the answer
        delta = choice.get("delta") or {}
        if delta.get("content"):
            state.parts.append(str(delta["content"]))
        if delta.get("refusal"):
            state.refusal.append(str(delta["refusal"]))
        state.finish_reason = choice.get("finish_reason") or state.finish_reason
    return state


class OpenAITextConnector(StreamingHTTPConnector[OpenAITextPayload, TextStream]):
    """Streams an OpenAI chat completion and returns its text, finish reason and usage."""

    service_type: ClassVar[str] = "openai_text"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = OPENAI_CAPABILITIES
    payload_model = OpenAITextPayload

    def __init__(
        self,
        settings: OpenAISettings | None = None,
        *,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or OpenAISettings()
        kwargs.pop("assets", None)  # text is returned inline; accepted for a uniform signature
        kwargs.setdefault("decoder", SSEDecoder(done_marker="[DONE]", end_required=True))
        # The whole job's bound: the task's soft time limit (emp_tasks.tasks, 2 x the service's
        # timeout + 30 s, the same OPENAI_TIMEOUT_SECONDS), which the threads pool never enforces.
        kwargs.setdefault("deadline", 2 * self.settings.timeout_seconds + 30)
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

    def build_request(self, job: JobData, payload: OpenAITextPayload) -> HttpRequest:
        body: dict[str, Any] = {
            "model": payload.model or self.settings.text_model,
            "messages": payload.chat_messages(),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        max_tokens = payload.max_tokens or self.settings.max_tokens
        temperature = (
            payload.temperature if payload.temperature is not None else self.settings.temperature
        )
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        return HttpRequest("POST", self.client.url("chat/completions"), json=body)

    def new_accumulator(self, job: JobData) -> TextStream:
        return TextStream()

    def accumulate(self, state: TextStream, chunk: Any, job: JobData) -> TextStream:
        data = chunk.data if isinstance(chunk, SSEEvent) else chunk
        return fold_chunk(state, data) if isinstance(data, dict) else state

    def check_chunk(self, chunk: Any, job: JobData) -> ConnectorError | None:
        error = stream_error(chunk, self.service_type)
        if error is None:
            return None
        info = error_info(chunk.data if isinstance(chunk, SSEEvent) else chunk)
        found = classify_openai_error(None, info)
        return error if found is None else error.reclassified(found)

    def is_complete(self, state: TextStream, job: JobData) -> bool:
        return state.finish_reason is not None

    def build_result(
        self, state: TextStream, job: JobData, payload: OpenAITextPayload
    ) -> JobResult:
        text = "".join(state.parts)
        model = state.model or payload.model or self.settings.text_model
        if state.finish_reason == "content_filter" or state.refusal:
            reason = "".join(state.refusal) or "the output was stopped by the content filter"
            # usage and model: the tokens were generated and billed, so the failure has a cost.
            context = {
                "finish_reason": state.finish_reason,
                "partial_text": text,
                "usage": state.usage,
                "model": model,
            }
            raise refusal_error(reason, service=self.service_type, context=context)
        usage = state.usage or {}
        return JobResult(
            data={
                "content_type": "text",
                "text": text,
                "model_used": model,
                "finish_reason": state.finish_reason,
                "usage": usage,
                "tokens_used": usage.get("total_tokens"),
            },
            metadata={"service": "openai", "connector": self.service_type},
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                service_job_id=state.completion_id,
                model_used=model,
                processing_stats={"usage": usage},
            ),
        )
