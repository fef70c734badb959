"""AUTOMATIC1111's error bodies, classified: pure functions, no I/O.

The web UI's API middleware answers every exception as `{"error": <exception class>, "detail":
<HTTPException detail or "">, "body": "", "errors": <str(exception)>}` with the exception's status
(500 for a non-HTTP one); FastAPI's own body validation answers 422 `{"detail": [{"loc", "msg",
"type"}]}`. The status misleads in two places: a 404 `{"detail": "Not Found"}` on `/sdapi` means
the server was started without `--api` (no retry can help: a configuration error), and a 500 is
either a CUDA out-of-memory (retryable: the GPU frees up) or a bug the same request hits again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = [
    "A1111Finding",
    "classify_a1111_error",
    "describe_error",
    "invalid_field",
    "refine_a1111_error",
]

R = FailureReason
T = FailureType
_NO_API = Classification(T.SYSTEM_ERROR, R.CONFIG_ERROR, False)
_OOM = Classification(T.RESOURCE_LIMIT, R.GPU_MEMORY_FULL, True)
_AUTH = Classification(T.AUTH_ERROR, R.INVALID_API_KEY, False)
_INVALID = Classification(T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False)
_OOM_TEXT = re.compile(r"out ?of ?memory|CUDA error: out of memory", re.IGNORECASE)
# 500s whose cause is the request itself: the same payload fails the same way again.
_BAD_INPUT = re.compile(r"invalid encoded image|incorrect padding|cannot identify image", re.I)


class A1111Finding(NamedTuple):
    """A verdict read from an error body, and the message to raise it with."""

    classification: Classification
    message: str


def describe_error(body: Any) -> str:
    """One line from an A1111 error body: the exception class and what it said."""
    if not isinstance(body, Mapping):
        return ""
    detail = body.get("detail")
    if isinstance(detail, list):
        detail = "; ".join(_detail_line(item) for item in detail)
    parts = [str(text) for text in (body.get("error"), detail, body.get("errors")) if text]
    return ": ".join(parts)


def _detail_line(item: Any) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    return f"{invalid_field(item) or 'body'}: {item.get('msg', 'invalid')}"


def invalid_field(item: Mapping[str, Any]) -> str | None:
    """The payload field a FastAPI validation item names (`loc` without its leading "body")."""
    loc = [str(part) for part in item.get("loc") or [] if part != "body"]
    return ".".join(loc) or None


def _first_invalid(body: Mapping[str, Any]) -> tuple[str | None, str]:
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], Mapping):
        return invalid_field(detail[0]), str(detail[0].get("msg") or "invalid value")
    return None, str(detail or body.get("errors") or "invalid request")


def classify_a1111_error(status: int, body: Any, path: str) -> A1111Finding | None:
    """The verdict an A1111 error reply carries beyond its status; None: the status decides."""
    info: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    text = describe_error(info)
    if status == 404 and info.get("detail") == "Not Found" and "/sdapi/" in path:
        message = (
            f"AUTOMATIC1111 answered 404 Not Found on {path}: the web UI runs without its API; "
            "start it with --api (and check A1111_BASE_URL)"
        )
        return A1111Finding(_NO_API, message)
    if status == 401:
        detail = text or "Incorrect username or password"
        return A1111Finding(
            _AUTH,
            f"AUTOMATIC1111 refused the credentials ({detail}): "
            "check A1111_AUTH against the server's --api-auth",
        )
    if info.get("error") == "OutOfMemoryError" or _OOM_TEXT.search(text):
        return A1111Finding(_OOM, f"AUTOMATIC1111 ran out of GPU memory: {text}")
    if status == 422:
        field, problem = _first_invalid(info)
        named = f"Invalid payload field '{field}'" if field else "Invalid payload"
        return A1111Finding(_INVALID, f"{named}: {problem} (AUTOMATIC1111 422)")
    if status == 500 and _BAD_INPUT.search(text):
        return A1111Finding(_INVALID, f"AUTOMATIC1111 could not use the input: {text}")
    return None


def refine_a1111_error(
    error: ConnectorError, response: requests.Response, body: Any
) -> ConnectorError:
    """Reclassify a status-based error with A1111's body (the ApiProfile refiner)."""
    path = urlsplit(response.url or "").path
    found = classify_a1111_error(response.status_code, body, path)
    if found is None:
        text = describe_error(body)
        if not text:
            return error
        message = f"HTTP {response.status_code} from {error.service}: {text}"
        return error.reclassified(error.classification, message)
    context: dict[str, Any] = {"a1111_error": describe_error(body) or None}
    if found.classification is _INVALID and isinstance(body, Mapping):
        field, _ = _first_invalid(body)
        if field:
            context["field"] = field
    return error.reclassified(found.classification, found.message, context=context)
