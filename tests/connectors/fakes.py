"""Test doubles for connector unit tests: the scripted transport, and a recording asset saver.

The transport (`FakeAdapter`, `Reply`, `fake_session`, ...) is the public `connectors.testing`,
re-exported here so the tests import their doubles from one place; `StubSaver` is test-only.
"""

from __future__ import annotations

from typing import Any

from connectors.testing import (
    FakeAdapter,
    Reply,
    body_json,
    empty_reply,
    fake_session,
    html_reply,
    json_reply,
    text_reply,
)

__all__ = [
    "FakeAdapter",
    "Reply",
    "StubSaver",
    "body_json",
    "empty_reply",
    "fake_session",
    "html_reply",
    "json_reply",
    "text_reply",
]


class StubSaver:
    """An AssetSaver that records what it was asked to save (or raises a scripted error)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.saved: list[tuple[object, str, str | None]] = []
        self.expects: list[str | None] = []  # the `expect` of each recorded save, in order
        self.error = error

    def save(
        self,
        source: object,
        *,
        job: Any,
        mime_type: str | None = None,
        expect: str | None = None,
    ) -> Any:
        from connectors.assets import SavedAsset

        if self.error is not None:
            raise self.error
        self.saved.append((source, job.id, mime_type))
        self.expects.append(expect)
        key = f"emp-tasks/{job.type}/{job.id}_0123456789ab.png"
        return SavedAsset(
            url=f"https://cdn.example.test/{key}",
            key=key,
            bucket="bucket",
            mime_type="image/png",
            size_bytes=42,
            sha256="0123456789ab" * 5 + "cafe",
        )
