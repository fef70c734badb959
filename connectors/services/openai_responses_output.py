"""Pure readings of a Responses API `Response` object: poll state, outputs, terminal failures.

Decisions, each a table or a small function so tests can pin them:

* `queued` / `in_progress` are pending (30 % / 60 %, the original's numbers);
* `failed` maps `error.code`: transient codes retry, content codes are refusals, image and input
  codes are validation errors, anything else is the polling mode's final `job_failed`;
* `cancelled` is final (`job_failed`, not retryable): someone cancelled it on purpose;
* `incomplete` with `content_filter` is a refusal; with `max_output_tokens` (or any other reason)
  it is a non-retryable response_error: the output is cut short, and the same budget would cut it
  again, so the fix is a larger `max_output_tokens` in the payload. Partial text goes in context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType
from connectors.protocol.polling import PollStatus
from connectors.services.openai_common import is_refusal, refusal_error, strip_base64

__all__ = [
    "FAILED_CODES",
    "PENDING_PROGRESS",
    "ImageCall",
    "ResponseOutput",
    "failed_error",
    "incomplete_error",
    "parse_output",
    "poll_status",
    "refusal_in",
]

R = FailureReason
T = FailureType
PENDING_PROGRESS = {"queued": 30.0, "in_progress": 60.0}
_CONTENT = Classification(T.GENERATION_REFUSAL, R.POLICY_VIOLATION, False)
_IMAGE_INPUT = Classification(T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False)
FAILED_CODES: dict[str, Classification] = {
    "server_error": Classification(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    "rate_limit_exceeded": Classification(T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
    "vector_store_timeout": Classification(T.TIMEOUT, R.PROCESSING_TIMEOUT, True),
    "invalid_prompt": _CONTENT,
    "bio_policy": _CONTENT,
    "image_content_policy_violation": Classification(T.GENERATION_REFUSAL, R.SAFETY_FILTER, False),
    "data_residency_mismatch": Classification(T.VALIDATION_ERROR, R.UNSUPPORTED_OPERATION, False),
    **dict.fromkeys(
        (
            "invalid_image",
            "invalid_image_format",
            "invalid_base64_image",
            "invalid_image_url",
            "image_too_large",
            "image_too_small",
            "image_parse_error",
            "invalid_image_mode",
            "image_file_too_large",
            "unsupported_image_media_type",
            "empty_image_file",
            "failed_to_download_image",
            "image_file_not_found",
        ),
        _IMAGE_INPUT,
    ),
}


@dataclass(frozen=True)
class ImageCall:
    """One `image_generation_call` output item."""

    id: str | None
    status: str | None
    result: str | None  # base64 (raw or a data: URL); None when no image was made
    output_format: str | None = None
    revised_prompt: str | None = None


@dataclass
class ResponseOutput:
    """The useful parts of `output[]`: text, refusals and image calls."""

    texts: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    images: list[ImageCall] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.texts)  # as the SDK's `Response.output_text` joins them


def _message(item: dict[str, Any], out: ResponseOutput) -> None:
    for part in item.get("content") or []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "output_text":
            out.texts.append(str(part.get("text") or ""))
        elif part.get("type") == "refusal":
            out.refusals.append(str(part.get("refusal") or "refused"))


def parse_output(body: dict[str, Any]) -> ResponseOutput:
    """Collect text, refusals and image calls from a Response; unknown item types are ignored."""
    out = ResponseOutput()
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            _message(item, out)
        elif item.get("type") == "image_generation_call":
            result = item.get("result")
            out.images.append(
                ImageCall(
                    id=item.get("id"),
                    status=item.get("status"),
                    result=result if isinstance(result, str) and result else None,
                    output_format=item.get("output_format"),
                    revised_prompt=item.get("revised_prompt"),
                )
            )
    return out


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def failed_error(body: dict[str, Any], service: str) -> ConnectorError | None:
    """The classified error for a `failed` Response; None leaves it to the mode's job_failed."""
    info = _object(body, "error")
    code = str(info.get("code") or "")
    message = str(info.get("message") or "OpenAI Responses job failed")
    found = FAILED_CODES.get(code)
    if found is None:
        return None
    if found.failure_type is T.GENERATION_REFUSAL:
        context = {"code": code, "response_id": body.get("id")}
        return refusal_error(message, service=service, context=context, reason=found.failure_reason)
    context = {"code": code, "response_id": body.get("id")}
    return found.error(
        f"OpenAI response failed ({code}): {message}", service=service, context=context
    )


def incomplete_error(body: dict[str, Any], service: str) -> ConnectorError:
    """The error for an `incomplete` Response (see the module docstring)."""
    reason = str(_object(body, "incomplete_details").get("reason") or "unknown")
    partial = parse_output(body).text
    context = {"incomplete_reason": reason, "partial_text": partial, "response_id": body.get("id")}
    if reason == "content_filter":
        return refusal_error(
            "the output was stopped by the content filter", service=service, context=context
        )
    found = Classification(T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False)
    return found.error(f"OpenAI response incomplete ({reason})", service=service, context=context)


def poll_status(body: Any, service: str) -> PollStatus:
    """One poll's reading of a Response body."""
    if not isinstance(body, dict):
        raise Classification(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, True).error(
            f"OpenAI returned a Response that is not an object: {type(body).__name__}",
            service=service,
        )
    status = str(body.get("status") or "")
    raw = strip_base64(body)
    if status in PENDING_PROGRESS:
        return PollStatus("pending", progress=PENDING_PROGRESS[status], message=status, raw=raw)
    if status == "completed":
        return PollStatus("completed", message=status, result=body, raw=raw)
    if status == "failed":
        info = _object(body, "error")
        message = str(info.get("message") or "OpenAI Responses job failed")
        return PollStatus("failed", message=message, raw=raw, error=failed_error(body, service))
    if status == "incomplete":
        return PollStatus("failed", message=status, raw=raw, error=incomplete_error(body, service))
    if status == "cancelled":
        return PollStatus("failed", message="OpenAI Responses job was cancelled", raw=raw)
    raise Classification(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, False).error(
        f"OpenAI returned an unknown Response status {status!r}",
        service=service,
        context={"response": raw},
    )


def refusal_in(output: ResponseOutput) -> str | None:
    """The refusal text of a completed Response, if it is one (even when an image came too)."""
    if output.refusals:
        return " ".join(output.refusals)
    text = output.text
    return text if text and is_refusal(text) else None
