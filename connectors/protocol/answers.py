"""A provider's HTTP answer as a journal entry, and back: what lets a retry skip the paid call.

Only what `parse_response` hooks read is kept - status, content type, encoding and body - so
the entry holds no request headers (the API key) and no query string. The body is base64, since
an answer may be binary; the runtime's journal stages large entries outside Redis.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.structures import CaseInsensitiveDict

__all__ = ["restore_answer", "snapshot_answer"]


def snapshot_answer(response: requests.Response) -> dict[str, Any]:
    """The journal entry for a (non-streamed) 2xx response."""
    parts = urlsplit(response.url or "")
    return {
        "status": response.status_code,
        "url": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        "content_type": response.headers.get("content-type"),
        "encoding": response.encoding,
        "body": base64.b64encode(response.content).decode("ascii"),
    }


def restore_answer(entry: dict[str, Any]) -> requests.Response | None:
    """The response a snapshot describes, or None when the entry is not one (then call again)."""
    try:
        body = base64.b64decode(entry["body"], validate=True)
        status = int(entry["status"])
    except (KeyError, TypeError, ValueError):
        return None
    response = requests.Response()
    response.status_code = status
    response._content = body  # what `.content`, `.text` and `.json()` read
    response.encoding = entry.get("encoding")
    response.url = str(entry.get("url") or "")
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    if entry.get("content_type"):
        headers["content-type"] = str(entry["content_type"])
    response.headers = headers
    return response
