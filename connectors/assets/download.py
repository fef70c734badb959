"""Download a provider output safely and stream it into a staged, hashed temp file.

Redirects are followed by hand (never by requests) so each hop's URL goes through the SSRF check
again. The size cap is applied to Content-Length up front and to the bytes actually received
(decompressed), and the whole download has a deadline, not just each read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urljoin

import requests
import urllib3

from connectors.assets.base import SERVICE
from connectors.assets.netguard import DownloadPolicy, check_target, display_url, refusal
from connectors.assets.staging import ContentSink, StagedContent, too_large
from connectors.classify import error_from_exception, error_from_status
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = ["CHUNK_BYTES", "download"]

CHUNK_BYTES = 256 * 1024
_HEADERS = {"User-Agent": "emp-tasks-asset-saver/1", "Accept": "*/*"}

Clock = Callable[[], float]
_READ_TIMEOUT = Classification(FailureType.TIMEOUT, FailureReason.NETWORK_TIMEOUT, True)


def _classify(exc: Exception) -> Classification:
    # urllib3's own errors surface here because the body is read with read1, below requests.
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return _READ_TIMEOUT
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return Classification(FailureType.RESPONSE_ERROR, FailureReason.CORRUPTED_DATA, False)
    if isinstance(exc, urllib3.exceptions.ProtocolError | ConnectionError):
        return Classification(FailureType.NETWORK_ERROR, FailureReason.CONNECTION_FAILED, True)
    return error_from_exception(exc).classification


def _transport_error(exc: Exception, url: str) -> ConnectorError:
    # requests' messages quote the full URL, query string included (where signed URLs keep
    # their secrets), so only the classification is kept and the message is rebuilt.
    return _classify(exc).error(
        f"Asset download from {display_url(url)} failed: {type(exc).__name__}",
        service=SERVICE,
        context={"url": display_url(url), "exception_type": type(exc).__name__},
    )


def _deadline_error(url: str, seconds: float) -> ConnectorError:
    return _READ_TIMEOUT.error(
        f"Asset download from {display_url(url)} took longer than {seconds:g} s "
        "(ASSET_DOWNLOAD_TIMEOUT_SECONDS)",
        service=SERVICE,
        context={"url": display_url(url)},
    )


def _redirected(exc: ConnectorError, origin: str) -> ConnectorError:
    # Say that a redirect led here: the URL the job gave was itself acceptable.
    return exc.reclassified(
        exc.classification,
        f"{exc.message} after a redirect from {display_url(origin)}",
        context={"redirected_from": display_url(origin)},
    )


def _request(
    session: requests.Session, url: str, policy: DownloadPolicy, remaining: float
) -> requests.Response:
    timeout = (min(policy.connect_timeout_seconds, remaining), remaining)
    try:
        return session.get(
            url, headers=_HEADERS, stream=True, allow_redirects=False, timeout=timeout
        )
    except requests.RequestException as exc:
        raise _transport_error(exc, url) from None


def _check_status(response: requests.Response, url: str) -> None:
    if 200 <= response.status_code < 300:
        return
    raise error_from_status(
        response.status_code,
        message=f"Asset download from {display_url(url)} returned HTTP {response.status_code}",
        headers=dict(response.headers),
        service=SERVICE,
        context={"url": display_url(url)},
    )


def _chunks(response: requests.Response) -> Iterator[bytes]:
    # read1 returns whatever has arrived (up to CHUNK_BYTES) instead of blocking until a full
    # chunk or EOF, so a server trickling bytes cannot hold the download past its deadline.
    raw = response.raw
    if not isinstance(raw, urllib3.HTTPResponse):  # an injected session's test adapter
        yield from response.iter_content(CHUNK_BYTES)
        return
    while chunk := raw.read1(CHUNK_BYTES, decode_content=True):
        yield chunk


def _receive(
    response: requests.Response, url: str, policy: DownloadPolicy, deadline: float, clock: Clock
) -> StagedContent:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise too_large(policy.max_bytes, "download")
    sink = ContentSink(policy.max_bytes, what="download")
    try:
        for chunk in _chunks(response):
            sink.write(chunk)
            if clock() > deadline:
                raise _deadline_error(url, policy.timeout_seconds)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        sink.discard()
        raise _transport_error(exc, url) from None
    except BaseException:
        sink.discard()
        raise
    return sink.finish(response.headers.get("content-type"), display_url(url))


def download(
    url: str,
    *,
    session: requests.Session,
    policy: DownloadPolicy,
    clock: Clock = time.monotonic,
) -> StagedContent:
    """Fetch `url` under `policy` into a staged file; any refusal or failure is a ConnectorError."""
    deadline = clock() + policy.timeout_seconds
    current = url
    for hop in range(policy.max_redirects + 1):
        try:
            check_target(current, policy)
        except ConnectorError as exc:
            raise (_redirected(exc, url) if hop else exc) from None
        remaining = deadline - clock()
        if remaining <= 0:
            raise _deadline_error(current, policy.timeout_seconds)
        with _request(session, current, policy, remaining) as response:
            if response.is_redirect:
                current = urljoin(current, response.headers["location"])
                continue
            _check_status(response, current)
            return _receive(response, current, policy, deadline, clock)
    raise refusal(url, f"more than {policy.max_redirects} redirects", "redirect")
