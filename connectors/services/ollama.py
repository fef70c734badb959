"""OllamaConnector: a local Ollama server's `/api/generate` and `/api/chat`, streamed as NDJSON.

A payload with `prompt` goes to `/api/generate`, one with `messages` to `/api/chat`. The reply
is one JSON object per line; every chunk's text (`response`, or `message.content`) is appended
and reported as progress, and the last (`"done": true`) carries the stats, whose durations
Ollama gives in nanoseconds (converted to ms here). A stream that ends without `done` was cut
(retryable); an `{"error": ...}` line under HTTP 200 is classified like an error reply. A 404
"model not found" is a validation_error that says to `ollama pull` the model.
Env: OLLAMA_BASE_URL (default http://127.0.0.1:11434), OLLAMA_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.http import (
    ApiProfile,
    CallObserver,
    HttpClient,
    HttpRequest,
    Probe,
    Timeouts,
)
from connectors.protocol.streaming import NDJSONDecoder, StreamingHTTPConnector, stream_error

__all__ = [
    "OLLAMA_API",
    "OllamaConnector",
    "OllamaMessage",
    "OllamaPayload",
    "OllamaSettings",
    "OllamaStream",
    "classify_ollama_error",
    "fold_chunk",
    "stats_of",
]

R = FailureReason
T = FailureType
_NOT_FOUND = re.compile(r"model ['\"]?([^'\"]+?)['\"]? not found", re.IGNORECASE)
_MEMORY = re.compile(r"more system memory|out of memory|cudaMalloc failed", re.IGNORECASE)
# A line `{"error": ...}` under HTTP 200 is the model runner failing mid-generation (a crash, an
# unexpected EOF, memory): a new attempt usually runs. The generic message rules misread these
# texts ("unexpected EOF" reads as a bad payload), so Ollama's own verdict is used.
_RUNNER_FAILED = Classification(T.SERVICE_ERROR, R.JOB_FAILED, True)
# The counts Ollama reports, and its durations (ns), which the result gives in ms.
_COUNTS = ("prompt_eval_count", "eval_count")
_DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


class OllamaSettings(BaseSettings):
    """Ollama settings from the worker's environment, OLLAMA_* (empty counts as unset)."""

    model_config = SettingsConfigDict(env_prefix="OLLAMA_", env_ignore_empty=True, extra="ignore")

    base_url: str = "http://127.0.0.1:11434"
    # Read timeout between chunks: the first one waits for the model to load.
    timeout_seconds: float = Field(default=120.0, gt=0)


class OllamaMessage(BaseModel):
    """One chat message; extra keys (images, tool_calls) pass through to Ollama."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool"]
    content: StrictStr


class OllamaPayload(BaseModel):
    """A generate job (`prompt`) or a chat job (`messages`) for one local model."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1, pattern=r"\S")
    prompt: StrictStr | None = None
    messages: list[OllamaMessage] | None = Field(default=None, min_length=1)
    system: StrictStr | None = None
    options: dict[str, Any] | None = None
    format: Literal["json"] | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> OllamaPayload:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'prompt' or 'messages'")
        return self

    @property
    def endpoint(self) -> str:
        """`chat` for messages, else `generate`."""
        return "chat" if self.messages is not None else "generate"

    def body(self) -> dict[str, Any]:
        """The request body, always streamed."""
        body = self.model_dump(exclude_none=True, exclude={"system", "messages"})
        if self.messages is not None:
            messages = [m.model_dump(exclude_none=True) for m in self.messages]
            if self.system is not None:  # /api/chat has no `system`: it is the first message
                messages.insert(0, {"role": "system", "content": self.system})
            body["messages"] = messages
        elif self.system is not None:
            body["system"] = self.system
        return {**body, "stream": True}


@dataclass
class OllamaStream:
    """What the chunks of one reply add up to."""

    parts: list[str] = field(default_factory=list)
    model: str | None = None
    done: bool = False
    final: dict[str, Any] = field(default_factory=dict)


def fold_chunk(state: OllamaStream, chunk: dict[str, Any]) -> OllamaStream:
    """Add one NDJSON chunk (generate's `response` or chat's `message.content`) to the state."""
    state.model = chunk.get("model") or state.model
    text = chunk.get("response")
    message = chunk.get("message")
    if text is None and isinstance(message, dict):
        text = message.get("content")
    if isinstance(text, str) and text:
        state.parts.append(text)
    if chunk.get("done") is True:
        state.done, state.final = True, chunk
    return state


def stats_of(final: dict[str, Any]) -> dict[str, Any]:
    """The final chunk's token counts, and its durations converted from ns to ms."""
    stats: dict[str, Any] = {key: final[key] for key in _COUNTS if isinstance(final.get(key), int)}
    for key in _DURATIONS:
        value = final.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            stats[key.replace("_duration", "_duration_ms")] = round(value / 1e6, 3)
    return stats


def classify_ollama_error(status: int | None, message: str) -> tuple[Classification, str] | None:
    """The verdict of an Ollama error message beyond its status; None: the status decides."""
    found = _NOT_FOUND.search(message)
    if found and status in (404, None):
        model = found.group(1)
        text = f"Ollama model '{model}' not found: pull it first (`ollama pull {model}`)"
        return Classification(T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False), text
    if _MEMORY.search(message):  # other models may unload: retried later, it can fit
        text = f"Ollama could not fit the model in memory: {message}"
        return Classification(T.RESOURCE_LIMIT, R.OUT_OF_MEMORY, True), text
    if status == 404:  # Go's "404 page not found": the base URL points somewhere else
        text = f"Ollama answered 404 ({message}): check OLLAMA_BASE_URL"
        return Classification(T.SYSTEM_ERROR, R.CONFIG_ERROR, False), text
    return None


def refine_ollama_error(
    error: ConnectorError, response: requests.Response, body: Any
) -> ConnectorError:
    """Reclassify a status-based error with Ollama's `{"error": "..."}` body."""
    text = body.get("error") if isinstance(body, dict) else None
    message = str(text) if text else (response.text or "").strip()[:300]
    found = classify_ollama_error(response.status_code, message)
    if found is None:
        return error
    return error.reclassified(found[0], found[1], context={"ollama_error": message})


OLLAMA_API = ApiProfile(refine=refine_ollama_error, probe=Probe("api/version"))


class OllamaConnector(StreamingHTTPConnector[OllamaPayload, OllamaStream]):
    """Streams an Ollama generate or chat reply and returns its text and final stats."""

    service_type: ClassVar[str] = "ollama"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities(
        supportsBasicHealthCheck=True, basicHealthCheckEndpoint="/api/version"
    )
    payload_model = OllamaPayload

    def __init__(
        self,
        settings: OllamaSettings | None = None,
        *,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or OllamaSettings()
        kwargs.pop("assets", None)  # text is returned inline; accepted for a uniform signature
        kwargs.setdefault("decoder", NDJSONDecoder(done_key="done"))
        kwargs.setdefault("progress_every", 1)  # the events' throttle keeps this cheap
        # The whole job's bound, as the task's soft time limit (2 x timeout + 30 s).
        kwargs.setdefault("deadline", 2 * self.settings.timeout_seconds + 30)
        client = HttpClient(
            self.service_type,
            self.settings.base_url,
            timeouts=timeouts or Timeouts(connect=10.0, read=self.settings.timeout_seconds),
            session=session,
            on_call=on_call,
            api=OLLAMA_API,
        )
        super().__init__(client=client, **kwargs)

    def build_request(self, job: JobData, payload: OllamaPayload) -> HttpRequest:
        return HttpRequest("POST", self.client.url(f"api/{payload.endpoint}"), payload.body())

    def new_accumulator(self, job: JobData) -> OllamaStream:
        return OllamaStream()

    def accumulate(self, state: OllamaStream, chunk: Any, job: JobData) -> OllamaStream:
        return fold_chunk(state, chunk) if isinstance(chunk, dict) else state

    def check_chunk(self, chunk: Any, job: JobData) -> ConnectorError | None:
        error = stream_error(chunk, self.service_type)
        if error is None:
            return None
        found = classify_ollama_error(None, str(chunk.get("error")))
        verdict = found[0] if found is not None else _RUNNER_FAILED
        return error.reclassified(verdict, found[1] if found is not None else None)

    def is_complete(self, state: OllamaStream, job: JobData) -> bool:
        return state.done

    def build_result(self, state: OllamaStream, job: JobData, payload: OllamaPayload) -> JobResult:
        text = "".join(state.parts)
        model = state.model or payload.model
        stats = stats_of(state.final)
        tokens = sum(stats.get(key, 0) for key in _COUNTS)
        data: dict[str, Any] = {
            "content_type": "text",
            "text": text,
            "model_used": model,
            "done_reason": state.final.get("done_reason"),
            "stats": stats,
            "tokens_used": tokens,
        }
        if payload.endpoint == "chat":
            data["message"] = {"role": "assistant", "content": text}
        return JobResult(
            data=data,
            metadata={"service": "ollama", "connector": self.service_type},
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                model_used=model,
                processing_stats=stats,
            ),
        )
