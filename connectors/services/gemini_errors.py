"""Gemini's failure signals, decided by pure functions: error bodies and HTTP 200 replies.

Gemini reports errors as a google.rpc.Status, `{"error": {code, message, status, details}}`, and
content blocks as HTTP 200: a blocked prompt has no `candidates` but a `promptFeedback.blockReason`,
a blocked output a `finishReason`. `classify_error_body` refines the status-based classification
(called by `refine_gemini_error`, the client's `GEMINI_API` profile); `check_response` vets a
200 reply (from `parse_response`). Both only decide, as a `Finding` (a Classification and a
one-line description); the connector builds the ConnectorError.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from connectors.errors import Classification, FailureReason, FailureType

__all__ = [
    "BLOCK_REASONS",
    "FINISH_REASONS",
    "RPC_STATUS",
    "Finding",
    "check_response",
    "classify_error_body",
    "error_reasons",
    "image_parts",
    "parse_duration",
    "quota_ids",
    "retry_delay",
    "strip_inline_data",
]

R = FailureReason
T = FailureType


C = Classification
# A decided Gemini failure: its classification (with any wait hint) and a one-line description.
Finding = tuple[Classification, str]

# google.rpc status -> classification when no detail says more.
RPC_STATUS: dict[str, Classification] = {
    "INVALID_ARGUMENT": C(T.VALIDATION_ERROR, R.INVALID_REQUEST, False),
    "OUT_OF_RANGE": C(T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
    # Gemini's "User location is not supported" and billing-required replies: no retry helps.
    "FAILED_PRECONDITION": C(T.VALIDATION_ERROR, R.UNSUPPORTED_OPERATION, False),
    "UNAUTHENTICATED": C(T.AUTH_ERROR, R.INVALID_API_KEY, False),
    "PERMISSION_DENIED": C(T.AUTH_ERROR, R.INSUFFICIENT_PERMISSIONS, False),
    "NOT_FOUND": C(T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False),
    "RESOURCE_EXHAUSTED": C(T.RATE_LIMIT, R.REQUESTS_PER_MINUTE, True),
    "ABORTED": C(T.SERVICE_ERROR, R.DEGRADED_PERFORMANCE, True),
    "UNAVAILABLE": C(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    "INTERNAL": C(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    "UNKNOWN": C(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
    "DEADLINE_EXCEEDED": C(T.TIMEOUT, R.PROCESSING_TIMEOUT, True),
}
# ErrorInfo reasons that turn a 400 INVALID_ARGUMENT into an auth failure.
_KEY_REASONS: dict[str, FailureReason] = {
    "API_KEY_INVALID": R.INVALID_API_KEY,
    "API_KEY_EXPIRED": R.EXPIRED_TOKEN,
}
_SAFETY = C(T.GENERATION_REFUSAL, R.SAFETY_FILTER, False)
_PROHIBITED = C(T.GENERATION_REFUSAL, R.POLICY_VIOLATION, False)
_RECITATION = C(T.GENERATION_REFUSAL, R.COPYRIGHT_BLOCKER, False)
_MISSING = C(T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False)
_MALFORMED = C(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT, False)
# finishReason -> (classification, what happened). Absent here: STOP, MAX_TOKENS and the
# tool-call reasons, which are judged by whether the candidate carries any content.
FINISH_REASONS: dict[str, Finding] = {
    "SAFETY": (_SAFETY, "output blocked by a safety filter"),
    "PROHIBITED_CONTENT": (_PROHIBITED, "output is prohibited content"),
    "BLOCKLIST": (_PROHIBITED, "output contains blocklisted terms"),
    "SPII": (
        C(T.GENERATION_REFUSAL, R.PERSONAL_INFO, False),
        "output contains personal information",
    ),
    "RECITATION": (_RECITATION, "output recites protected material"),
    "IMAGE_SAFETY": (_SAFETY, "image blocked by a safety filter"),
    "IMAGE_PROHIBITED_CONTENT": (_PROHIBITED, "image is prohibited"),
    "IMAGE_RECITATION": (_RECITATION, "image recites protected work"),
    "LANGUAGE": (C(T.VALIDATION_ERROR, R.UNSUPPORTED_OPERATION, False), "unsupported language"),
    "NO_IMAGE": (_MISSING, "the model produced no image"),
    "IMAGE_OTHER": (_MISSING, "image generation stopped for an unspecified reason"),
    "OTHER": (_MISSING, "generation stopped for an unspecified reason"),
}
# promptFeedback.blockReason -> refusal reason (MODEL_ARMOR and JAILBREAK are Vertex names).
BLOCK_REASONS: dict[str, FailureReason] = {
    "SAFETY": R.SAFETY_FILTER,
    "IMAGE_SAFETY": R.SAFETY_FILTER,
    "PROHIBITED_CONTENT": R.POLICY_VIOLATION,
    "BLOCKLIST": R.POLICY_VIOLATION,
    "OTHER": R.POLICY_VIOLATION,
    "MODEL_ARMOR": R.POLICY_VIOLATION,
    "JAILBREAK": R.POLICY_VIOLATION,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s?\s*$")


def parse_duration(value: Any) -> float | None:
    """Seconds from a protobuf Duration as JSON ("34s", "0.5s", "1.25"), or None if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1))
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _details(error: Mapping[str, Any], type_suffix: str) -> list[Mapping[str, Any]]:
    raw = error.get("details")
    items = raw if isinstance(raw, list) else []
    return [
        d for d in items if isinstance(d, Mapping) and str(d.get("@type", "")).endswith(type_suffix)
    ]


def retry_delay(error: Mapping[str, Any]) -> float | None:
    """The wait a `google.rpc.RetryInfo` detail asks for, in seconds."""
    for info in _details(error, "google.rpc.RetryInfo"):
        seconds = parse_duration(info.get("retryDelay"))
        if seconds is not None:
            return seconds
    return None


def quota_ids(error: Mapping[str, Any]) -> list[str]:
    """The `quotaId`s (or metrics) of every `google.rpc.QuotaFailure` violation."""
    found: list[str] = []
    for failure in _details(error, "google.rpc.QuotaFailure"):
        violations = failure.get("violations")
        for item in violations if isinstance(violations, list) else []:
            if isinstance(item, Mapping):
                found.append(str(item.get("quotaId") or item.get("quotaMetric") or ""))
    return [q for q in found if q]


def error_reasons(error: Mapping[str, Any]) -> list[str]:
    """The `reason` of every `google.rpc.ErrorInfo` detail (e.g. API_KEY_INVALID)."""
    return [str(info.get("reason")) for info in _details(error, "google.rpc.ErrorInfo")]


def _envelope(body: Any) -> Mapping[str, Any] | None:
    # A stream (without alt=sse) wraps its error in a one-element array.
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else None


def _exhausted(status: str, message: str, error: Mapping[str, Any]) -> Finding:
    quotas = quota_ids(error)
    daily = next((q for q in quotas if "perday" in q.lower()), None)
    if daily is not None:
        # Retrying inside the same day only burns attempts; RetryInfo here is not a promise.
        text = f"{status}: {message} (per-day quota {daily}; not retried before it resets)"
        return C(T.RATE_LIMIT, R.DAILY_QUOTA_EXCEEDED, False), text
    tokens = any("token" in q.lower() for q in quotas)
    reason = R.TOKENS_PER_MINUTE if tokens else R.REQUESTS_PER_MINUTE
    return C(T.RATE_LIMIT, reason, True, retry_delay(error)), f"{status}: {message}"


def classify_error_body(body: Any) -> Finding | None:
    """Classify a Gemini error body; None when it is not one (keep the status classification)."""
    error = _envelope(body)
    status = str(error.get("status") or "") if error else ""
    if error is None or status not in RPC_STATUS:
        return None
    message = str(error.get("message") or "no message")
    if status == "RESOURCE_EXHAUSTED":
        return _exhausted(status, message, error)
    if status == "INVALID_ARGUMENT":
        key_reason = next(
            (_KEY_REASONS[r] for r in error_reasons(error) if r in _KEY_REASONS), None
        )
        if key_reason is None and "api key not valid" in message.lower():
            key_reason = R.INVALID_API_KEY
        if key_reason is not None:
            return C(T.AUTH_ERROR, key_reason, False), f"{status}: {message}"
    return RPC_STATUS[status], f"{status}: {message}"


def _parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


def image_parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The `inlineData` blobs (camel or snake case) of a candidate that carry data."""
    blobs = (p.get("inlineData", p.get("inline_data")) for p in _parts(candidate))
    return [b for b in blobs if isinstance(b, Mapping) and b.get("data")]


def _has_text(candidate: Mapping[str, Any]) -> bool:
    # Thought summaries are not the answer: a reply of thoughts alone has no content.
    return any(isinstance(p.get("text"), str) and not p.get("thought") for p in _parts(candidate))


def _blocked(body: Mapping[str, Any]) -> Finding:
    feedback = body.get("promptFeedback")
    block = str(feedback.get("blockReason") or "") if isinstance(feedback, Mapping) else ""
    if not block:
        return _MISSING, "Gemini returned no candidates and no block reason"
    reason = BLOCK_REASONS.get(block, R.POLICY_VIOLATION)
    return C(T.GENERATION_REFUSAL, reason, False), f"Gemini blocked the prompt ({block})"


def check_response(body: Any, *, image_required: bool) -> Finding | None:
    """Why a 200 generateContent reply is a failure (refusal, no image, no content), or None."""
    if not isinstance(body, Mapping):
        return _MALFORMED, f"expected a JSON object, got {type(body).__name__}"
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return _blocked(body)
    first = candidates[0]
    if not isinstance(first, Mapping):
        return _MALFORMED, "candidate is not an object"
    finish = str(first.get("finishReason") or "")
    if finish in FINISH_REASONS:
        found, what = FINISH_REASONS[finish]
        return found, f"Gemini stopped ({finish}): {what}"
    has_image = bool(image_parts(first))
    if image_required and not has_image:
        return _MISSING, f"Gemini returned no image (finishReason {finish or '-'})"
    if not has_image and not _has_text(first):
        return _MISSING, f"Gemini returned no content (finishReason {finish or '-'})"
    return None


def strip_inline_data(value: Any) -> Any:
    """A copy of a reply with every inline blob's base64 replaced by its length (for logs)."""
    if isinstance(value, list):
        return [strip_inline_data(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("inlineData", "inline_data") and isinstance(item, Mapping):
            size = len(str(item.get("data") or ""))
            out[key] = {**item, "data": f"<{size} base64 chars>"}
        else:
            out[key] = strip_inline_data(item)
    return out
