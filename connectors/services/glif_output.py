"""Turn a successful Glif body into the record's `data` block (pure)."""

from __future__ import annotations

import json
import mimetypes
from typing import Any
from urllib.parse import urlsplit

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = ["CONTENT_TYPES", "MEDIA_KINDS", "glif_output", "guess_mime"]

_MISSING = Classification(FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA)

CONTENT_TYPES = ("image", "audio", "video", "text", "json", "html")
MEDIA_KINDS = frozenset({"image", "audio", "video"})
_DEFAULT_MIME = {"image": "image/png", "audio": "audio/mpeg", "video": "video/mp4"}
_EXT_KIND = {
    "png": "image",
    "jpg": "image",
    "jpeg": "image",
    "webp": "image",
    "gif": "image",
    "mp3": "audio",
    "wav": "audio",
    "ogg": "audio",
    "mp4": "video",
    "webm": "video",
    "mov": "video",
}


def guess_mime(url: str, kind: str) -> str:
    """MIME type from the URL's extension, else the usual one for the media kind."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed or _DEFAULT_MIME[kind]


def _infer_kind(output: Any) -> str:
    # Without outputFull, a URL ending in a media extension is media; anything else is text.
    if isinstance(output, str) and output.startswith(("http://", "https://")):
        ext = urlsplit(output).path.rsplit(".", 1)[-1].lower()
        return _EXT_KIND.get(ext, "text")
    return "text"


def _missing(kind: str, body: dict[str, Any], service: str) -> ConnectorError:
    what = f"a {kind} output but sent no URL for it" if kind else "success but sent no output"
    return _MISSING.error(f"Glif reported {what}", service=service, context={"raw_response": body})


def glif_output(body: dict[str, Any], service: str = "glif") -> dict[str, Any]:
    """The `data` block: content_type plus the output as URL, text, parsed JSON or HTML."""
    full = body.get("outputFull") if isinstance(body.get("outputFull"), dict) else None
    output = body.get("output")
    # outputFull.value when given, else `output` (also when outputFull.value is null).
    value = full.get("value") if full else None
    if value is None:
        value = output
    if value is None:
        # A 200 with neither `output` nor `outputFull.value` is not a result: the run was paid
        # for and produced nothing, so it must not show as a success.
        raise _missing("", body, service)
    kind = str(full.get("type") or "").lower() if full else ""
    if kind not in CONTENT_TYPES:
        kind = _infer_kind(value)
    if kind in MEDIA_KINDS:
        if not isinstance(value, str) or not value:
            raise _missing(kind, body, service)
        key = "image_url" if kind == "image" else "asset_url"
        return {"content_type": kind, key: value, "mime_type": guess_mime(value, kind)}
    if kind == "json":
        return {"content_type": "json", "json": _parse_json(value)}
    if kind == "html":
        return {"content_type": "html", "html": str(value)}
    return {"content_type": "text", "text": str(value)}


def _parse_json(value: Any) -> Any:
    # Glif sends JSON outputs as a JSON *string*; keep the raw text if it does not parse.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
