"""Gemini job payloads (validated before any call) and the generateContent body built from them.

Pure: no I/O here. Fetching an edit's `image_url` happens in the connector, through the asset
download guard.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from connectors.assets.mime import mime_from_magic, normalize_mime

__all__ = [
    "ASPECT_RATIOS",
    "MAX_INLINE_BYTES",
    "GeminiImageEditPayload",
    "GeminiImagePayload",
    "GeminiTextPayload",
    "InlineImage",
    "decode_base64_image",
    "inline_from_base64",
    "inline_from_bytes",
    "request_body",
]

# Gemini refuses inline requests over 20 MB; larger inputs would need the Files API.
MAX_INLINE_BYTES = 20 * 1024 * 1024
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
AspectRatio = Literal["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
_URLSAFE = str.maketrans("-_", "+/")


class GeminiTextPayload(BaseModel):
    """A Gemini job: a prompt or ready-made `contents`, an optional model and temperature."""

    model_config = ConfigDict(extra="forbid")

    contents: list[dict[str, Any]] | None = None
    # validate_default: the "prompt or contents" rule must run when prompt is absent.
    prompt: str | None = Field(default=None, validate_default=True)
    # The model is part of the URL path, so only a plain model id is accepted.
    model: str | None = Field(
        default=None, max_length=128, pattern=r"^(models/)?[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)

    @field_validator("contents")
    @classmethod
    def _contents_have_parts(cls, value: list[dict[str, Any]] | None) -> Any:
        if value is None:
            return value
        if not value:
            raise ValueError("must not be empty")
        for index, item in enumerate(value):
            parts = item.get("parts")
            if not isinstance(parts, list) or not parts:
                raise ValueError(f"item {index} needs a non-empty 'parts' list")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_or_contents(cls, value: str | None, info: ValidationInfo) -> str | None:
        has_contents = info.data.get("contents") is not None
        if value is None:
            if not has_contents and "contents" in info.data:
                raise ValueError("field required (or give 'contents')")
            return value
        if has_contents:
            raise ValueError("give either 'prompt' or 'contents', not both")
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def model_id(self) -> str | None:
        """The model without its optional `models/` prefix."""
        return self.model.removeprefix("models/") if self.model else None


class GeminiImagePayload(GeminiTextPayload):
    """A Gemini image job: the text payload plus an optional aspect ratio."""

    aspect_ratio: AspectRatio | None = None


def decode_base64_image(text: str) -> tuple[bytes, str | None]:
    """Bytes and declared MIME type of raw base64 or a base64 `data:` URL; ValueError if bad."""
    declared: str | None = None
    if text[:5].lower() == "data:":
        header, sep, text = text[5:].partition(",")
        params = header.split(";")
        if not sep or "base64" not in (p.strip().lower() for p in params[1:]):
            raise ValueError("a data: URL must be base64-encoded (data:<type>;base64,...)")
        declared = params[0].strip() or None
    compact = "".join(text.split()).translate(_URLSAFE)
    if len(compact) // 4 * 3 > MAX_INLINE_BYTES + 3:
        raise ValueError(f"is larger than Gemini's inline limit of {MAX_INLINE_BYTES} bytes")
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not valid base64") from None
    if not data:
        raise ValueError("is empty")
    return data, declared


class GeminiImageEditPayload(GeminiImagePayload):
    """A Gemini image edit: the image payload plus exactly one input image (URL or base64)."""

    image_url: str | None = None
    image_base64: str | None = Field(default=None, validate_default=True)
    mime_type: str | None = Field(default=None, pattern=r"^image/[A-Za-z0-9.+-]+$")

    @field_validator("image_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = urlsplit(value.strip())
            host = parts.hostname
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme.lower() not in ("http", "https") or not host:
            raise ValueError("must be an http(s) URL")
        return value.strip()

    @field_validator("image_base64")
    @classmethod
    def _exactly_one_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        url_given = info.data.get("image_url") is not None
        if value is None:
            if not url_given and "image_url" in info.data:
                raise ValueError("field required: give 'image_url' or 'image_base64'")
            return value
        if url_given:
            raise ValueError("give either 'image_url' or 'image_base64', not both")
        decode_base64_image(value)
        return value


class InlineImage(NamedTuple):
    """An image as Gemini takes it inline: MIME type and base64 text."""

    mime_type: str
    data: str


def inline_from_bytes(data: bytes, mime_type: str | None) -> InlineImage:
    """Base64-encode `data`; the MIME type given wins, then magic bytes, then PNG."""
    mime = normalize_mime(mime_type) or mime_from_magic(data[:64]) or "image/png"
    return InlineImage(mime, base64.b64encode(data).decode("ascii"))


def inline_from_base64(text: str, mime_type: str | None) -> InlineImage:
    """Normalise payload base64 (data: URL, URL-safe, no padding) to what Gemini takes."""
    data, declared = decode_base64_image(text)
    # The bytes outrank a data: URL's label, which clients often get wrong.
    return inline_from_bytes(data, mime_type or mime_from_magic(data[:64]) or declared)


def request_body(
    payload: GeminiTextPayload, *, image_output: bool, image: InlineImage | None = None
) -> dict[str, Any]:
    """The generateContent JSON (camelCase, as the official SDK sends it)."""
    if payload.contents is not None:
        contents = copy.deepcopy(payload.contents)  # never mutate the job's payload
    else:
        contents = [{"role": "user", "parts": [{"text": payload.prompt}]}]
    if image is not None:
        # The edit's input image follows the instruction, as in Google's editing examples.
        contents[-1]["parts"].append(
            {"inlineData": {"mimeType": image.mime_type, "data": image.data}}
        )
    config: dict[str, Any] = {}
    if payload.temperature is not None:
        config["temperature"] = payload.temperature
    if image_output:
        config["responseModalities"] = ["TEXT", "IMAGE"]
    aspect = getattr(payload, "aspect_ratio", None)
    if aspect:
        config["imageConfig"] = {"aspectRatio": aspect}
    body: dict[str, Any] = {"contents": contents}
    if config:
        body["generationConfig"] = config
    return body
