"""Pure parts of the Gemini emulator: model catalog, request reading, reply and error bodies.

Requests are read the way Google's proto-JSON parser reads them: camelCase or snake_case keys,
enum values in upper case, unknown top-level fields refused. Replies are camelCase, as the API
sends them. Everything is deterministic in the request, so tests can compare exact values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from emp_tasks.sandbox.png import make_png

__all__ = [
    "IMAGE_SIDE",
    "MODELS",
    "GenerateRequest",
    "ModelInfo",
    "RequestError",
    "decode_bytes",
    "error_body",
    "generate_reply",
    "image_size",
    "model_resource",
    "parse_request",
    "quota_body",
    "stream_chunks",
]

_RPC = "type.googleapis.com/google.rpc."
_TOP_LEVEL = {
    "contents",
    "generationConfig",
    "safetySettings",
    "systemInstruction",
    "tools",
    "toolConfig",
    "cachedContent",
    "labels",
}
_MODALITIES = {"TEXT", "IMAGE", "AUDIO"}
_URLSAFE = str.maketrans("-_", "+/")
IMAGE_SIDE = 256  # the long side of a generated PNG
IMAGE_TOKENS = 1290  # what Gemini bills per generated image
INPUT_IMAGE_TOKENS = 258


@dataclass(frozen=True)
class ModelInfo:
    """A sandbox model: its id, display name and whether it can output images."""

    id: str
    display_name: str
    image_output: bool = False
    input_limit: int = 1_048_576
    output_limit: int = 65_536


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo("gemini-2.5-flash", "Gemini 2.5 Flash"),
        ModelInfo("gemini-2.5-pro", "Gemini 2.5 Pro"),
        ModelInfo("gemini-2.0-flash", "Gemini 2.0 Flash", output_limit=8192),
        ModelInfo("gemini-2.5-flash-image", "Nano Banana", True, 32_768, 32_768),
        ModelInfo("gemini-3-pro-image-preview", "Nano Banana Pro", True, 65_536, 32_768),
    )
}


class RequestError(ValueError):
    """A request Gemini would refuse with 400 INVALID_ARGUMENT."""


@dataclass
class GenerateRequest:
    """What the emulator needs from a generateContent body."""

    prompt: str
    images: list[bytes] = field(default_factory=list)
    modalities: list[str] = field(default_factory=lambda: ["TEXT"])
    aspect_ratio: str | None = None


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    """A field by its camelCase name or its snake_case twin."""
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


def error_body(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A google.rpc.Status error envelope."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def quota_body(retry_delay: str | None, per_day: bool) -> dict[str, Any]:
    """429 RESOURCE_EXHAUSTED with a QuotaFailure and, when given, a RetryInfo."""
    span = "PerDay" if per_day else "PerMinute"
    quota = f"GenerateRequests{span}PerProjectPerModel-FreeTier"
    details: list[dict[str, Any]] = [
        {
            "@type": _RPC + "QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": quota,
                    "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                }
            ],
        },
        {"@type": _RPC + "Help", "links": [{"description": "Learn more about Gemini API quotas"}]},
    ]
    if retry_delay is not None:
        details.append({"@type": _RPC + "RetryInfo", "retryDelay": retry_delay})
    message = (
        "You exceeded your current quota, please check your plan and billing details. "
        f"Quota exceeded for metric: {quota}"
    )
    return error_body(429, "RESOURCE_EXHAUSTED", message, details)


def decode_bytes(text: str) -> bytes:
    """A proto-JSON `bytes` field: standard or URL-safe base64 (the SDK sends URL-safe),
    padding optional; binascii.Error when it is neither."""
    raw = text.translate(_URLSAFE)
    return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)


def _part(part: Any, where: str, request: GenerateRequest, texts: list[str]) -> None:
    if not isinstance(part, Mapping):
        raise RequestError(f"Invalid value at '{where}': expected an object")
    blob = _get(part, "inlineData")
    if isinstance(part.get("text"), str):
        texts.append(part["text"])
    elif isinstance(blob, Mapping):
        try:
            data = decode_bytes(str(blob.get("data") or ""))
        except (binascii.Error, ValueError):
            raise RequestError(
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
            ) from None
        if not _get(blob, "mimeType"):
            raise RequestError(f"* {where}.inline_data.mime_type: mime_type is not specified")
        request.images.append(data)


def _contents(raw: Any, request: GenerateRequest) -> None:
    if not isinstance(raw, list) or not raw:
        raise RequestError("* GenerateContentRequest.contents: contents is not specified")
    texts: list[str] = []
    for i, content in enumerate(raw):
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if not isinstance(parts, list) or not parts:
            raise RequestError(f"* GenerateContentRequest.contents[{i}].parts: must not be empty")
        for j, part in enumerate(parts):
            _part(part, f"contents[{i}].parts[{j}]", request, texts)
    request.prompt = "\n".join(texts)


def _config(raw: Any, request: GenerateRequest) -> None:
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise RequestError("Invalid value at 'generation_config': expected an object")
    modalities = _get(raw, "responseModalities")
    if modalities is not None:
        if not isinstance(modalities, list) or any(m not in _MODALITIES for m in modalities):
            raise RequestError(
                f"Invalid value at 'generation_config.response_modalities', {modalities!r}"
            )
        request.modalities = list(modalities) or ["TEXT"]
    image_config = _get(raw, "imageConfig")
    if isinstance(image_config, Mapping):
        aspect = _get(image_config, "aspectRatio")
        request.aspect_ratio = str(aspect) if aspect else None


def parse_request(body: Any) -> GenerateRequest:
    """Read a generateContent body; RequestError says what Gemini would answer with 400."""
    if not isinstance(body, Mapping):
        raise RequestError("Invalid JSON payload received. Expected an object.")
    for key in body:
        camel = "".join(w.capitalize() if i else w for i, w in enumerate(str(key).split("_")))
        if camel not in _TOP_LEVEL:
            raise RequestError(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
            )
    request = GenerateRequest(prompt="")
    _contents(_get(body, "contents"), request)
    _config(_get(body, "generationConfig"), request)
    return request


def image_size(aspect_ratio: str | None) -> tuple[int, int]:
    """(width, height) of a generated image: the long side IMAGE_SIDE, the ratio kept."""
    try:
        w, h = (int(x) for x in (aspect_ratio or "1:1").split(":"))
    except ValueError:
        w, h = 1, 1
    if w >= h:
        return IMAGE_SIDE, max(1, round(IMAGE_SIDE * h / w))
    return max(1, round(IMAGE_SIDE * w / h)), IMAGE_SIDE


def generate_reply(model: str, request: GenerateRequest) -> dict[str, Any]:
    """The 200 reply: a text part (deterministic in the prompt) and, for IMAGE, a PNG part."""
    inputs = hashlib.sha256(b"".join(request.images)).hexdigest()
    seed = f"{model}|{request.prompt}|{request.aspect_ratio}|{inputs}"
    digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()
    text = f"Sandbox {model} answer to {request.prompt!r} (run {digest[:12]})"
    if request.images:
        size = sum(len(i) for i in request.images)
        text += f"; received {len(request.images)} input image(s), {size} bytes"
    # As Gemini does, a reply holds only the modalities asked for.
    parts: list[dict[str, Any]] = [{"text": text}] if "TEXT" in request.modalities else []
    if "IMAGE" in request.modalities:
        png = make_png(seed, *image_size(request.aspect_ratio))
        parts.append(
            {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}
        )
    prompt_tokens = max(1, len(request.prompt.split())) + INPUT_IMAGE_TOKENS * len(request.images)
    images = sum("inlineData" in p for p in parts)
    out_tokens = len(text.split()) * (len(parts) - images) + IMAGE_TOKENS * images
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
        },
        "modelVersion": model,
        "responseId": base64.urlsafe_b64encode(bytes.fromhex(digest[:32])).decode().rstrip("="),
    }


def stream_chunks(reply: dict[str, Any], pieces: int = 3) -> list[dict[str, Any]]:
    """A reply as streamGenerateContent sends it: text split over chunks, the rest at the end."""
    candidates = reply.get("candidates") or [{}]
    first: dict[str, Any] = candidates[0]
    parts = first.get("content", {}).get("parts", [])
    if not parts or "text" not in parts[0]:
        return [reply]  # blocks, refusals and image-only replies arrive as one chunk
    words = parts[0]["text"].split(" ")
    size = max(1, -(-len(words) // pieces))
    texts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    texts = [t + " " for t in texts[:-1]] + texts[-1:]  # the pieces concatenate to the text
    usage = reply["usageMetadata"]
    early = {
        "promptTokenCount": usage["promptTokenCount"],
        "totalTokenCount": usage["promptTokenCount"],
    }
    head = {k: reply[k] for k in ("modelVersion", "responseId")}
    chunks = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}],
            "usageMetadata": early,
            **head,
        }
        for t in texts
    ]
    last = chunks[-1]["candidates"][0]
    last["content"]["parts"].extend(parts[1:])
    last["finishReason"] = first.get("finishReason", "STOP")
    chunks[-1]["usageMetadata"] = usage
    return chunks


def model_resource(info: ModelInfo) -> dict[str, Any]:
    """A `models/{id}` resource as GET /v1beta/models returns it."""
    return {
        "name": f"models/{info.id}",
        "version": "001",
        "displayName": info.display_name,
        "description": f"Sandbox emulation of {info.display_name}",
        "inputTokenLimit": info.input_limit,
        "outputTokenLimit": info.output_limit,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }
