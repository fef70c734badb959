"""Keep secrets and oversized bodies out of errors, results, events and logs.

Tokens reach a connector from the worker's environment. Providers sometimes echo them back
("Incorrect API key provided: sk-...") so redaction works two ways: by key name (anything that
looks like a credential field is masked) and by value (every registered secret is scrubbed from
every string, wherever it appears).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MAX_CONTEXT_CHARS",
    "REDACTED",
    "is_secret_key",
    "redact",
    "register_secret",
    "scrub",
    "truncate",
]

REDACTED = "[REDACTED]"
MAX_CONTEXT_CHARS = 2000

_SECRET_KEY = re.compile(
    r"(authorization|api[_-]?key|token|secret|password|passwd|credential|signature|"
    r"x-goog-api-key|(access|session|account|storage|private)[_-]?key)",
    re.IGNORECASE,
)
# Keys whose names contain "token" but hold counts, not credentials (usage accounting).
_COUNT_KEY = re.compile(r"(tokens|token_?count|tokens_?used|tokens_?details)$", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so `scrub` removes it from any text (short values are ignored)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret and any bearer credential in `text`."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(r"\1" + REDACTED, text)


def truncate(text: str, limit: int = MAX_CONTEXT_CHARS) -> str:
    """Cut `text` to at most `limit` characters, saying how much was dropped (idempotent)."""
    if len(text) <= limit:
        return text
    marker = f"...[truncated {len(text)} chars]"
    if limit <= len(marker):
        return text[:limit]
    return text[: limit - len(marker)] + marker


def is_secret_key(key: str) -> bool:
    """Whether a field name looks like it holds a credential (not a token count)."""
    return bool(_SECRET_KEY.search(key)) and not _COUNT_KEY.search(key)


def redact(value: Any, *, limit: int = MAX_CONTEXT_CHARS, _depth: int = 0) -> Any:
    """Return a JSON-safe copy of `value` with secrets masked and long strings truncated."""
    if _depth > 8:
        return "[nested too deep]"
    if isinstance(value, str):
        return truncate(scrub(value), limit)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in list(value.items())[:100]:
            name = str(key)
            out[name] = (
                REDACTED
                if is_secret_key(name) and item
                else redact(item, limit=limit, _depth=_depth + 1)
            )
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if len(items) <= 50:
            return [redact(item, limit=limit, _depth=_depth + 1) for item in items]
        # 49 items and a marker: 50 in all, so redacting the result again changes nothing.
        shown = [redact(item, limit=limit, _depth=_depth + 1) for item in items[:49]]
        return [*shown, f"...[{len(items) - 49} more items]"]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return truncate(scrub(repr(value)), limit)
