"""The input image of a Gemini edit, as inlineData: decoded from base64 or fetched safely.

A URL is fetched through the asset download guard (SSRF checks on every hop, size cap, deadline),
capped at Gemini's 20 MB inline limit, before any call to Gemini.
"""

from __future__ import annotations

import dataclasses

import requests

from connectors.assets import (
    DownloadPolicy,
    download_policy,
    guarded_session,
    load_settings,
    resolve_mime,
)
from connectors.assets.download import download
from connectors.errors import ConnectorError, validation_error
from connectors.services.gemini_payloads import (
    MAX_INLINE_BYTES,
    GeminiImageEditPayload,
    InlineImage,
    inline_from_base64,
    inline_from_bytes,
)

__all__ = ["InputImageFetcher"]


class InputImageFetcher:
    """Turns an edit payload's image (base64 or URL) into inlineData for the request."""

    def __init__(
        self, session: requests.Session | None = None, policy: DownloadPolicy | None = None
    ) -> None:
        self._session = session
        self._policy = policy

    @property
    def policy(self) -> DownloadPolicy:
        """ASSET_DOWNLOAD_* settings, with the size cap lowered to Gemini's inline limit."""
        if self._policy is None:
            policy = download_policy(load_settings())
            limit = min(policy.max_bytes, MAX_INLINE_BYTES)
            self._policy = dataclasses.replace(policy, max_bytes=limit)
        return self._policy

    @property
    def session(self) -> requests.Session:
        """The guarded download session (built on first use)."""
        if self._session is None:
            self._session = guarded_session(self.policy)
        return self._session

    def inline(self, payload: GeminiImageEditPayload, service: str) -> InlineImage:
        """The payload's image as inlineData; a failed or unsafe fetch is a ConnectorError."""
        if payload.image_base64 is not None:
            return inline_from_base64(payload.image_base64, payload.mime_type)
        assert payload.image_url is not None  # the payload holds exactly one image
        try:
            with download(payload.image_url, session=self.session, policy=self.policy) as content:
                data = content.file.read()
                mime = payload.mime_type or resolve_mime(
                    content.declared_mime, content.head, content.name_hint
                )
        except ConnectorError as exc:
            # The job's input failed, not its output storage: a copy naming the field and service.
            raise exc.with_context({"field": "image_url"}, service=service) from exc.__cause__
        if not mime.startswith("image/"):
            raise validation_error("image_url", f"is not an image ({mime})", service=service)
        return inline_from_bytes(data, mime)
