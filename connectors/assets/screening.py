"""Which outputs may be stored at all: never active content, and only the kind a caller expects.

Saved assets are served from the user's own bucket or CDN domain, so a provider "image" that is
really an HTML page or a scripted SVG would run script on that domain (stored XSS). Active
content is refused whatever the caller expects: when the resolved type (the type the object
would be served as, see `mime.resolve_mime`) is active, and when the first bytes are markup
whatever the type says. A claimed `text/html` on PNG bytes resolves to `image/png` and is
stored as the image it is. A caller that passes `expect` also refuses any output whose resolved
major type is another one. Both refusals are `response_error` / `unexpected_content_type`, not
retryable: the provider's answer is wrong, and asking again returns the same bytes.
"""

from __future__ import annotations

from connectors.assets.base import SERVICE, ExpectedKind
from connectors.assets.mime import major_type, markup_from_magic, normalize_mime
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = ["ACTIVE_TYPES", "is_active", "screen", "unexpected_content_type"]

# Types a browser renders as a document or runs as script. Every `+xml` type counts too: an XML
# document can carry XHTML script elements.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
    }
)

_UNEXPECTED = Classification(
    FailureType.RESPONSE_ERROR, FailureReason.UNEXPECTED_CONTENT_TYPE, False
)


def is_active(mime: str | None) -> bool:
    """Whether content of this MIME type could run script when served from the storage domain."""
    normal = normalize_mime(mime)
    return normal in ACTIVE_TYPES or normal.endswith("+xml")


def unexpected_content_type(message: str, **context: str | None) -> ConnectorError:
    """The non-retryable `response_error` / `unexpected_content_type` a refused output raises."""
    return _UNEXPECTED.error(
        message,
        service=SERVICE,
        context={name: value for name, value in context.items() if value is not None},
    )


def screen(
    resolved: str,
    *,
    head: bytes,
    expect: ExpectedKind | None,
    origin: str | None = None,
) -> None:
    """Raise unless an output resolved as `resolved` may be stored (see the module docstring).

    `head` is the output's first bytes, `origin` where it came from (a display URL, for the
    message).
    """
    source = f" from {origin}" if origin else ""
    evidence = (resolved, markup_from_magic(head))
    active = next((normalize_mime(m) for m in evidence if is_active(m)), None)
    if active is not None:
        raise unexpected_content_type(
            f"The provider output{source} is {active}, active content that could run script "
            f"where it is hosted; it is not stored (resolved type {resolved})",
            mime_type=resolved,
            active_type=active,
            expected=expect,
            url=origin,
        )
    if expect is not None and major_type(resolved) != expect:
        raise unexpected_content_type(
            f"The provider output{source} is {resolved}, not the {expect}/* this job expects",
            mime_type=resolved,
            expected=expect,
            url=origin,
        )
