"""MIME type decisions: from a header, from magic bytes, from a name; and the extension for one.

All tables are fixed here rather than read from the `mimetypes` database, whose contents vary
with the host's /etc/mime.types: a key must not change when a retry lands on another worker.
"""

from __future__ import annotations

import posixpath
from urllib.parse import urlsplit

from connectors.models import OutputKind

__all__ = [
    "OCTET_STREAM",
    "extension_for",
    "major_type",
    "markup_from_magic",
    "mime_from_magic",
    "mime_from_name",
    "normalize_mime",
    "output_kind",
    "resolve_mime",
]

OCTET_STREAM = "application/octet-stream"

_EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/svg+xml": "svg",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "video/x-matroska": "mkv",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
    "audio/mp4": "m4a",
    "application/pdf": "pdf",
    "application/json": "json",
    "application/zip": "zip",
    "text/plain": "txt",
    "text/html": "html",
    "text/csv": "csv",
    "text/markdown": "md",
}
_ALIASES: dict[str, str] = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-flac": "audio/flac",
    "binary/octet-stream": OCTET_STREAM,
}
_BY_EXTENSION: dict[str, str] = {
    **{ext: mime for mime, ext in _EXTENSIONS.items()},
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "tif": "image/tiff",
    "text": "text/plain",
    "m4v": "video/mp4",
}
# Headers that say nothing about the content: magic bytes and the name are better evidence.
_GENERIC = frozenset({OCTET_STREAM, "application/binary", "application/unknown", ""})
# Servers label many unknown files text/plain, so it ranks below magic bytes and the name.
_WEAK = frozenset({"text/plain"})
# Magic bytes that start a container rather than settle the major type: an ftyp box opens MP4
# video, M4A audio and HEIF images alike, and WebM, Matroska and Ogg carry audio-only streams.
# A header naming any of these majors is not contradicted by such bytes.
_AV = frozenset({"audio", "video"})
_CONTAINER_MAJORS: dict[str, frozenset[str]] = {
    "video/mp4": _AV | {"image"},
    "video/quicktime": _AV,
    "audio/mp4": _AV,
    "video/webm": _AV,
    "video/x-matroska": _AV,
    "audio/ogg": _AV,
}
# Documents a browser would render (WHATWG MIME sniffing's HTML patterns): `<` + name + an end.
_HTML_TAGS = (
    b"!doctype html",
    b"html",
    b"head",
    b"body",
    b"script",
    b"iframe",
    b"style",
    b"title",
    b"table",
    b"font",
    b"div",
    b"h1",
    b"br",
    b"a",
    b"b",
    b"p",
)
_TAG_END = frozenset(b" \t\n\r\x0c>/")
_TEXT_SPACE = b" \t\n\r\x0c"
# ftyp brands that are not plain MP4 video.
_FTYP_BRANDS: dict[bytes, str] = {
    b"qt  ": "video/quicktime",
    b"M4A ": "audio/mp4",
    b"avif": "image/avif",
    b"avis": "image/avif",
}


def normalize_mime(value: str | None) -> str:
    """Lower-case, parameters dropped, aliases folded (`image/jpg` -> `image/jpeg`)."""
    base = (value or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _is_mpeg_audio_frame(head: bytes) -> bool:
    # 11 sync bits, then MPEG layer III (bits 01); rules out JPEG (FF D8) and AAC ADTS (layer 00).
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 == 0x02


def _riff_or_ftyp(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "video/mp4")
    return None


def _text_start(head: bytes) -> bytes:
    # UTF-16 (by its byte-order mark) folded to ASCII, UTF-8 BOM and leading whitespace dropped.
    if head.startswith((b"\xfe\xff", b"\xff\xfe")):
        head = head.decode("utf-16", errors="ignore").encode("ascii", errors="ignore")
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(_TEXT_SPACE).lower()


def _opens_with(text: bytes, name: bytes) -> bool:
    tag = b"<" + name
    return text.startswith(tag) and (len(text) == len(tag) or text[len(tag)] in _TAG_END)


def markup_from_magic(head: bytes) -> str | None:
    """`text/html`, `image/svg+xml` or an XML type when the first bytes are markup, else None.

    Case-insensitive, after any byte-order mark and whitespace: `<!doctype html`, `<html`, the
    other WHATWG HTML openers and `<!--`; `<svg` or `<!doctype svg`; `<?xml` (SVG or XHTML when
    an `<svg` or `<html` element follows within the first bytes, else `application/xml`).
    """
    text = _text_start(head)
    if text.startswith(b"<?xml"):
        if b"<svg" in text:
            return "image/svg+xml"
        return "application/xhtml+xml" if b"<html" in text else "application/xml"
    if _opens_with(text, b"svg") or _opens_with(text, b"!doctype svg"):
        return "image/svg+xml"
    if text.startswith(b"<!--") or any(_opens_with(text, tag) for tag in _HTML_TAGS):
        return "text/html"
    return None


def mime_from_magic(head: bytes) -> str | None:
    """The MIME type the first bytes prove, or None when they prove nothing.

    Binary signatures first; then markup (HTML, SVG, XML), which `markup_from_magic` names.
    """
    prefixes: tuple[tuple[bytes, str], ...] = (
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"ID3", "audio/mpeg"),
        (b"OggS", "audio/ogg"),
        (b"fLaC", "audio/flac"),
    )
    for magic, mime in prefixes:
        if head.startswith(magic):
            return mime
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM unless the doctype says Matroska
        return "video/x-matroska" if b"matroska" in head[:64] else "video/webm"
    found = _riff_or_ftyp(head)
    if found is None and _is_mpeg_audio_frame(head):
        return "audio/mpeg"
    return found or markup_from_magic(head)


def mime_from_name(name: str | None) -> str | None:
    """The MIME type a file name or URL path suggests by its extension, or None."""
    if not name:
        return None
    path = urlsplit(name).path if "://" in name else name
    ext = posixpath.splitext(posixpath.basename(path))[1].lstrip(".").lower()
    return _BY_EXTENSION.get(ext)


def major_type(mime: str | None) -> str:
    """The major type of a MIME type (`image` for `image/png`); empty when there is none."""
    normal = normalize_mime(mime)
    return normal.split("/", 1)[0] if "/" in normal else ""


def _contradicts(declared: str, sniffed: str) -> bool:
    allowed = _CONTAINER_MAJORS.get(sniffed, frozenset({major_type(sniffed)}))
    return major_type(declared) not in allowed


def resolve_mime(header: str | None, head: bytes, name: str | None) -> str:
    """Pick the MIME type: a specific header, then magic bytes, then the name, then the fallback.

    A specific header loses to magic bytes that contradict its major type: `image/png` on bytes
    that open with `<html` resolves to `text/html`, and `text/html` on PNG bytes to `image/png`.
    Within one major type the header stands (`image/webp` on PNG bytes stays `image/webp`), and
    container signatures (MP4, WebM, Ogg) do not contradict an audio or video header. A generic
    header (`application/octet-stream`) is ignored; `text/plain` is kept only when neither the
    bytes nor the name say anything better.
    """
    declared = normalize_mime(header)
    sniffed = mime_from_magic(head)
    if declared not in _GENERIC and declared not in _WEAK and "/" in declared:
        if sniffed and _contradicts(declared, sniffed):
            return sniffed
        return declared
    found = sniffed or mime_from_name(name)
    if found:
        return found
    return declared if declared in _WEAK else OCTET_STREAM


def extension_for(mime: str) -> str:
    """The file extension for a MIME type (no dot); `bin` for any type not in the table."""
    return _EXTENSIONS.get(normalize_mime(mime), "bin")


def output_kind(mime: str) -> OutputKind:
    """The `OutputFile.type` for a MIME type: image, video, audio, text or binary."""
    normal = normalize_mime(mime)
    kinds: dict[str, OutputKind] = {"image": "image", "video": "video", "audio": "audio"}
    major = normal.split("/", 1)[0]
    if major in kinds:
        return kinds[major]
    return "text" if major == "text" or normal == "application/json" else "binary"
