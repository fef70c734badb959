"""Bodies and headers the OpenAI emulator sends, including its fault replies (no sockets here).

Shapes follow reference/provider-apis.md section 2 and the openai-python types: the error
envelope, chat completions and their SSE chunks, Images API replies, the model list, and the
HTTP error each fault kind produces. Deterministic: the same input gives the same text and PNG.
"""

from __future__ import annotations

import base64
import math
import re
import time
import uuid
from typing import Any

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.png import make_png

__all__ = [
    "BASE_HEADERS",
    "FAILED_MESSAGES",
    "HTTP_FAULTS",
    "MODELS",
    "REFUSAL_TEXT",
    "auth_error",
    "chat_chunks",
    "chat_completion",
    "error_body",
    "fault_reply",
    "image_b64",
    "images_reply",
    "mask_key",
    "models_list",
    "new_id",
    "prompt_of",
    "reply_text",
]

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-5", "gpt-image-1", "dall-e-3", "dall-e-2")
REFUSAL_TEXT = "I'm sorry, but I can't assist with that request."
FAILED_MESSAGES = {
    "server_error": "The server had an error while processing your request. Sorry about that!",
    "rate_limit_exceeded": "Rate limit reached while processing the background response.",
    "image_content_policy_violation": "Image generation was blocked by the safety system.",
    "invalid_prompt": "Invalid prompt: we've limited access to this content for safety reasons.",
}
MAX_SIDE = 1536  # gpt-image sizes go to 1536; larger asks are clamped to keep the sandbox fast
_SIZE = re.compile(r"^(\d{1,4})x(\d{1,4})$")


def new_id(prefix: str) -> str:
    """A fresh provider-style id, e.g. `resp_3f2a...`."""
    return f"{prefix}{uuid.uuid4().hex}"


def error_body(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The `{"error": {message, type, param, code}}` envelope every endpoint uses."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: input_text / text
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_of(body: dict[str, Any]) -> str:
    """The user's text in a chat, Responses or Images request (the `prompt` match key)."""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    source = body.get("messages", body.get("input"))
    if isinstance(source, str):
        return source
    if isinstance(source, list):
        users = [m for m in source if isinstance(m, dict) and m.get("role", "user") == "user"]
        return _text(users[-1].get("content")) if users else ""
    return ""


def reply_text(prompt: str) -> str:
    """The sandbox model's deterministic answer."""
    return f"Sandbox reply to: {prompt}" if prompt else "Sandbox reply."


def _usage(prompt: str, text: str) -> dict[str, int]:
    p, c = max(1, len(prompt.split())), max(1, len(text.split()))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def chat_completion(body: dict[str, Any], refusal: bool) -> dict[str, Any]:
    """A non-streamed `chat.completion` (a refusal ends with `content_filter` and no text)."""
    prompt, model = prompt_of(body), str(body.get("model"))
    text = "" if refusal else reply_text(prompt)
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "content_filter" if refusal else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(prompt, text),
        "system_fingerprint": "fp_sandbox",
    }


def chat_chunks(body: dict[str, Any], refusal: bool, cut: bool) -> list[dict[str, Any]]:
    """The `chat.completion.chunk`s of a stream, up to and without `[DONE]`.

    `cut` stops after the content (no finish chunk, no usage): a stream that broke off.
    """
    done = chat_completion(body, refusal)
    head = {k: done[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice], **({"usage": None} if include_usage else {})}

    words = re.findall(r"\S+\s*", done["choices"][0]["message"]["content"])
    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": word}) for word in words]
    if cut:
        return chunks
    chunks.append(chunk({}, done["choices"][0]["finish_reason"]))
    if include_usage:
        chunks.append({**head, "choices": [], "usage": done["usage"]})
    return chunks


def _size(value: Any) -> tuple[int, int]:
    found = _SIZE.match(str(value or ""))
    if not found:
        return 1024, 1024  # "auto" and anything unparsable
    return min(MAX_SIDE, max(1, int(found[1]))), min(MAX_SIDE, max(1, int(found[2])))


def image_b64(seed: str, size: Any) -> str:
    """A real PNG (the sandbox renders PNG whatever `output_format` asks), base64-encoded."""
    width, height = _size(size)
    return base64.b64encode(make_png(seed, width, height)).decode("ascii")


def images_reply(body: dict[str, Any]) -> dict[str, Any]:
    """The Images API reply: `n` base64 PNGs plus the echo fields and usage."""
    prompt, count = str(body.get("prompt")), int(body.get("n") or 1)
    data = [{"b64_json": image_b64(f"{prompt}|{i}", body.get("size"))} for i in range(count)]
    if str(body.get("model")).startswith("dall-e-3"):
        data = [{**item, "revised_prompt": f"A picture of {prompt}"} for item in data]
    tokens = max(1, len(prompt.split()))
    return {
        "created": int(time.time()),
        "data": data,
        "background": body.get("background") or "opaque",
        "output_format": "png",
        "quality": body.get("quality") or "medium",
        "size": body.get("size") or "1024x1024",
        "usage": {
            "input_tokens": tokens,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": tokens},
            "output_tokens": 272 * count,
            "total_tokens": tokens + 272 * count,
        },
    }


def models_list() -> dict[str, Any]:
    """`GET /v1/models`."""
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "openai"} for m in MODELS
    ]
    return {"object": "list", "data": data}


# Sent on every reply; a rate_limit fault zeroes the remaining requests.
BASE_HEADERS = {
    "openai-version": "2020-10-01",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "1999990",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "0s",
}
_QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes."
)
_SERVER = "The server had an error while processing your request. Sorry about that!"
_SAFETY = (
    "Your request was rejected by the safety system. If you believe this is an error, contact "
    "us at help.openai.com and include the request ID {wfr}."
)
_POLICY = (
    "Your request was rejected as a result of our safety system. Your prompt may contain text "
    "that is not allowed by our safety system."
)
_RATE = (
    "Rate limit reached for {model} in organization org-sandbox on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 1s."
)
_BAD_KEY = (
    "Incorrect API key provided: {masked}. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
# kind -> (status, type, code, message template, default wait in seconds)
HTTP_FAULTS: dict[str, tuple[int, str, str | None, str, float | None]] = {
    "rate_limit": (429, "requests", "rate_limit_exceeded", _RATE, 1.0),
    "insufficient_quota": (429, "insufficient_quota", "insufficient_quota", _QUOTA, None),
    "invalid_api_key": (401, "invalid_request_error", "invalid_api_key", _BAD_KEY, None),
    "moderation_blocked": (400, "image_generation_user_error", "moderation_blocked", _SAFETY, None),
    "content_policy_violation": (
        400,
        "invalid_request_error",
        "content_policy_violation",
        _POLICY,
        None,
    ),
    "model_not_found": (
        404,
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
        None,
    ),
    "server_error": (500, "server_error", None, _SERVER, None),
    "overloaded": (503, "server_error", None, "The server is overloaded or not ready yet.", 1.0),
    "should_retry_false": (500, "server_error", None, _SERVER, None),
}


def mask_key(token: str | None) -> str:
    """An API key as OpenAI echoes it: a few characters each end, the rest starred."""
    if not token:
        return "<none>"
    return f"{token[:3]}{'*' * max(4, len(token) - 7)}{token[-4:]}" if len(token) > 8 else "***"


def auth_error(token: str | None) -> dict[str, Any]:
    """The 401 body for a missing or wrong key."""
    if token:
        return error_body(
            _BAD_KEY.format(masked=mask_key(token)), "invalid_request_error", "invalid_api_key"
        )
    return error_body(_NO_KEY, "invalid_request_error")


def _wait_headers(fault: Fault, default: float | None) -> dict[str, str]:
    seconds: str | float | None = fault.retry_after if fault.retry_after is not None else default
    if fault.retry_after is None and fault.retry_after_ms is not None:
        seconds = fault.retry_after_ms / 1000
    if isinstance(seconds, str):
        return {"retry-after": seconds}  # an HTTP date, sent as given
    if seconds is None:
        return {}
    whole = str(math.ceil(seconds)) if seconds >= 1 else str(seconds)
    millis = fault.retry_after_ms if fault.retry_after_ms is not None else round(seconds * 1000)
    return {"retry-after": whole, "retry-after-ms": str(millis)}


def fault_reply(
    fault: Fault, model: str | None, token: str | None
) -> tuple[int, Any, dict[str, str]]:
    """(status, body, headers) of an HTTP fault; the fault's own knobs override the defaults."""
    status, kind, code, template, wait = HTTP_FAULTS[fault.kind]
    message = fault.message or template.format(
        model=model or "gpt-4o-mini", masked=mask_key(token), wfr=new_id("wfr_")[:30]
    )
    headers = _wait_headers(fault, wait)
    if fault.kind == "rate_limit":
        headers.update({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1s"})
    if fault.kind == "should_retry_false":
        headers["x-should-retry"] = "false"
    headers.update(fault.headers)
    body = fault.body if fault.body is not None else error_body(message, kind, code)
    return fault.status or status, body, headers
