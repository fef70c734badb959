"""SSRF guard for asset downloads: which URLs and addresses a worker may fetch from.

A URL is checked before each request (scheme, host, every resolved address), and the address is
checked again at connect time by the session `guarded_session` builds: the socket connects to the
very address that passed, so a DNS answer that changes between the check and the connect (DNS
rebinding) cannot reach an internal service. Hosts on ASSET_DOWNLOAD_ALLOW_HOSTS skip the address
checks (the sandbox serves outputs from localhost); the scheme check always applies.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from connectors.assets.base import SERVICE
from connectors.assets.settings import DEFAULT_MAX_BYTES
from connectors.errors import Classification, ConnectorError, FailureReason, FailureType

__all__ = [
    "AddressCheck",
    "DownloadPolicy",
    "Resolver",
    "Target",
    "address_problem",
    "check_target",
    "display_url",
    "guarded_session",
    "pinned_address",
    "refusal",
    "system_resolve",
]

Resolver = Callable[[str, int], Sequence[str]]
AddressCheck = Callable[[str], str | None]
_SCHEMES = {"http": 80, "https": 443}


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (IPv4 and IPv6, de-duplicated)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Target(NamedTuple):
    """The scheme, host and port a URL points at."""

    scheme: str
    host: str
    port: int


def display_url(url: str) -> str:
    """The URL without credentials or query: signed URLs carry secrets in their query string."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<malformed url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def refusal(url: str, problem: str, kind: str) -> ConnectorError:
    """A non-retryable error for a download the policy refuses, naming the reason."""
    reason = FailureReason.INVALID_PAYLOAD if kind == "size" else FailureReason.INVALID_REQUEST
    return Classification(FailureType.VALIDATION_ERROR, reason, False).error(
        f"Asset download refused: {problem} ({display_url(url)})",
        service=SERVICE,
        context={"url": display_url(url), "refusal": kind},
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # IPv4 reachable through an IPv6 form: mapped, 6to4, Teredo (client) and NAT64 well-known.
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(address: str) -> str | None:
    """Why a worker must not connect to `address` ('loopback', 'private', ...), or None."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]  # drop an IPv6 zone id
    )
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    # Most specific label first: 127.0.0.1 is also "private" to the ipaddress module.
    labels = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        # fec0::/10, deprecated (RFC 3879) but still routed inside some networks.
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("not globally routable", not ip.is_global),
    )
    return next((label for label, hit in labels if hit), None)


@dataclass(frozen=True)
class DownloadPolicy:
    """What a download may fetch: allow-listed hosts, size cap, time budget, redirect limit."""

    allow_hosts: frozenset[str] = frozenset()
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 10.0
    max_redirects: int = 5
    resolve: Resolver = field(default=system_resolve, compare=False)
    address_check: AddressCheck = field(default=address_problem, compare=False)

    def allows(self, host: str, port: int) -> bool:
        """Whether `host` (any port) or `host:port` is on the allow-list."""
        shown = f"[{host}]" if ":" in host else host
        return host in self.allow_hosts or f"{shown}:{port}" in self.allow_hosts


def _target(url: str) -> Target:
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        raise refusal(url, "malformed URL", "url") from None
    if scheme not in _SCHEMES:
        raise refusal(url, f"scheme {scheme or '(none)'!r} not allowed", "scheme")
    if not host:
        raise refusal(url, "URL has no host", "url")
    return Target(scheme, host.rstrip(".").lower(), port or _SCHEMES[scheme])


def pinned_address(host: str, port: int, policy: DownloadPolicy, url: str = "") -> str:
    """The address to connect to: `host` itself when allow-listed, else a checked IP literal."""
    if policy.allows(host, port):
        return host
    shown = url or f"http://{host}:{port}/"
    try:
        addresses = list(policy.resolve(host, port))
    except (OSError, UnicodeError) as exc:
        unresolved = Classification(FailureType.NETWORK_ERROR, FailureReason.DNS_RESOLUTION, True)
        raise unresolved.error(
            f"Asset download failed: cannot resolve host {host!r} ({type(exc).__name__})",
            service=SERVICE,
            context={"url": display_url(shown)},
        ) from None
    if not addresses:
        raise refusal(shown, f"host {host!r} has no address", "address")
    for address in addresses:  # every answer must pass: a client may connect to any of them
        problem = policy.address_check(address)
        if problem:
            raise refusal(shown, f"address {address} is {problem}", "address")
    return addresses[0]


def check_target(url: str, policy: DownloadPolicy) -> Target:
    """Refuse a URL whose scheme, host or resolved addresses the policy does not allow."""
    target = _target(url)
    pinned_address(target.host, target.port, policy, url)
    return target


def _pinned_new_conn(conn: HTTPConnection, policy: DownloadPolicy) -> socket.socket:
    name: str = conn._dns_host
    # Connect to the checked IP while `host` (SNI, certificate, Host header) stays the name;
    # urllib3 derives `host` from `_dns_host`, so the name is put back at once.
    conn._dns_host = pinned_address(name.rstrip("."), conn.port, policy)
    try:
        return HTTPConnection._new_conn(conn)
    finally:
        conn._dns_host = name


def _pool_classes(policy: DownloadPolicy) -> dict[str, type[HTTPConnectionPool]]:
    class PinnedHTTPConnection(HTTPConnection):
        """An HTTP connection that connects only to an address the policy allows."""

        def _new_conn(self) -> socket.socket:
            return _pinned_new_conn(self, policy)

    class PinnedHTTPSConnection(HTTPSConnection):
        """An HTTPS connection that connects only to an address the policy allows."""

        def _new_conn(self) -> socket.socket:
            return _pinned_new_conn(self, policy)

    class PinnedHTTPPool(HTTPConnectionPool):
        """An HTTP pool of pinned connections."""

        ConnectionCls = PinnedHTTPConnection

    class PinnedHTTPSPool(HTTPSConnectionPool):
        """An HTTPS pool of pinned connections."""

        ConnectionCls = PinnedHTTPSConnection

    return {"http": PinnedHTTPPool, "https": PinnedHTTPSPool}


class _GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connection pools pin every connection to a checked address."""

    def __init__(self, policy: DownloadPolicy) -> None:
        self._policy = policy
        super().__init__(max_retries=0)  # Celery owns retries

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self._policy)


def guarded_session(policy: DownloadPolicy) -> requests.Session:
    """A session that checks the connected address on every connection, proxies disabled."""
    session = requests.Session()
    # An environment proxy would resolve the host itself, out of reach of the address check.
    session.trust_env = False
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
