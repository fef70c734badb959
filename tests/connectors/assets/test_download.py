"""Safe downloads against a real local HTTP server: every SSRF refusal, the allow-list, limits.

The server listens on 127.0.0.1, so the same URLs show both sides: refused as loopback by the
default policy, fetched once the host is on ASSET_DOWNLOAD_ALLOW_HOSTS.
"""

from __future__ import annotations

import datetime
import gzip
import itertools
import ssl
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.assets import DownloadPolicy, LocalAssetSaver, RemoteUrl, guarded_session
from connectors.assets.download import download
from connectors.assets.netguard import address_problem
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.models import JobData
from tests.connectors.assets.conftest import PNG, LocalHttp, Reply

PUBLIC_IP = "93.184.216.34"


def _allowing(*hosts: str, **limits: float) -> DownloadPolicy:
    return DownloadPolicy(allow_hosts=frozenset(hosts), **limits)  # type: ignore[arg-type]


def _fetch(url: str, policy: DownloadPolicy) -> bytes:
    with download(url, session=guarded_session(policy), policy=policy) as staged:
        return staged.file.read()


def _refused(url: str, policy: DownloadPolicy) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        _fetch(url, policy)
    return caught.value


def _assert_refusal(error: ConnectorError, words: str) -> None:
    assert error.failure_type is FailureType.VALIDATION_ERROR
    assert error.retryable is False
    assert words in error.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://files.example.com/out.png", "scheme 'ftp' not allowed"),
        ("file:///etc/passwd", "scheme 'file' not allowed"),
        ("gopher://example.com:70/_x", "scheme 'gopher' not allowed"),
        ("data:text/plain,hi", "scheme 'data' not allowed"),
        ("//example.com/out.png", "scheme '(none)' not allowed"),
        ("http:///no-host", "URL has no host"),
        ("http://example.com:99999/x", "malformed URL"),
    ],
)
def test_only_http_and_https_urls_are_fetched(url: str, words: str) -> None:
    error = _refused(url, DownloadPolicy())
    _assert_refusal(error, words)
    assert error.failure_reason is FailureReason.INVALID_REQUEST


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("127.0.0.1", "address 127.0.0.1 is loopback"),
        ("localhost", "is loopback"),
        ("10.0.0.5", "address 10.0.0.5 is private"),
        ("192.168.1.20", "is private"),
        ("172.16.0.1", "is private"),
        ("169.254.169.254", "address 169.254.169.254 is link-local"),  # cloud metadata
        ("0.0.0.0", "is unspecified"),
        ("224.0.0.1", "is multicast"),
        ("240.0.0.1", "is reserved"),
        ("100.64.0.1", "is not globally routable"),
        ("2130706433", "address 127.0.0.1 is loopback"),  # decimal IPv4
        ("0x7f000001", "address 127.0.0.1 is loopback"),  # hex IPv4
        ("[::1]", "address ::1 is loopback"),
        ("[fe80::1]", "is link-local"),
        ("[fc00::1]", "is private"),
        ("[fec0::1]", "address fec0::1 is site-local"),  # deprecated site-local, fec0::/10
        ("[::ffff:10.0.0.5]", "is private"),  # IPv4-mapped IPv6
    ],
)
def test_private_and_reserved_addresses_are_refused(host: str, words: str) -> None:
    error = _refused(f"http://{host}/output.png", DownloadPolicy())
    _assert_refusal(error, words)
    assert error.context["refusal"] == "address"


@pytest.mark.parametrize("address", ["8.8.8.8", PUBLIC_IP, "2606:4700:4700::1111"])
def test_public_addresses_pass_the_address_check(address: str) -> None:
    assert address_problem(address) is None


def test_a_host_is_refused_if_any_of_its_addresses_is_private() -> None:
    policy = DownloadPolicy(resolve=lambda host, port: [PUBLIC_IP, "10.1.2.3"])
    _assert_refusal(_refused("https://mixed.example/x.png", policy), "address 10.1.2.3 is private")


def test_loopback_server_is_refused_by_default(http: LocalHttp) -> None:
    url = http.route("/out.png", Reply(body=PNG, headers={"Content-Type": "image/png"}))
    _assert_refusal(_refused(url, DownloadPolicy()), "address 127.0.0.1 is loopback")
    assert http.requests == []  # refused before any connection


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.1:{port}"])
def test_allow_listed_host_is_fetched(http: LocalHttp, entry: str) -> None:
    url = http.route("/out.png", Reply(body=PNG, headers={"Content-Type": "image/png"}))
    assert _fetch(url, _allowing(entry.format(port=http.port))) == PNG


def test_allow_list_entry_with_a_port_allows_only_that_port(http: LocalHttp) -> None:
    url = http.route("/out.png", Reply(body=PNG))
    _assert_refusal(_refused(url, _allowing("127.0.0.1:1")), "is loopback")


def test_download_records_type_name_size_and_digest(http: LocalHttp) -> None:
    url = http.route("/renders/out.webp", Reply(body=PNG, headers={"Content-Type": "image/webp"}))
    policy = _allowing("127.0.0.1")
    with download(url + "?sig=secret", session=guarded_session(policy), policy=policy) as staged:
        assert (staged.size, staged.declared_mime, staged.head) == (len(PNG), "image/webp", PNG)
        assert staged.name_hint == url  # query dropped
        assert len(staged.sha256) == 64


@pytest.mark.parametrize(
    ("location", "words"),
    [
        ("http://127.0.0.1:{port}/out.png", "address 127.0.0.1 is loopback"),
        ("http://10.0.0.5/out.png", "address 10.0.0.5 is private"),
        ("http://169.254.169.254/latest/meta-data/", "is link-local"),
        ("file:///etc/passwd", "scheme 'file' not allowed"),
    ],
)
def test_every_redirect_hop_is_checked_again(http: LocalHttp, location: str, words: str) -> None:
    http.route("/out.png", Reply(body=PNG))
    url = http.route("/hop", Reply(302, headers={"Location": location.format(port=http.port)}))
    # Allowed under the name "localhost" only: the redirect's 127.0.0.1 is another host.
    error = _refused(url.replace("127.0.0.1", "localhost"), _allowing(f"localhost:{http.port}"))
    _assert_refusal(error, words)
    assert "after a redirect from" in error.message
    assert "/out.png" not in http.requests


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_to_allowed_hosts_are_followed(http: LocalHttp, status: int) -> None:
    http.route("/final.png", Reply(body=PNG))
    url = http.route("/start", Reply(status, headers={"Location": "/final.png"}))
    assert _fetch(url, _allowing("127.0.0.1")) == PNG


def test_redirect_loops_stop_after_the_limit(http: LocalHttp) -> None:
    url = http.route("/loop", Reply(302, headers={"Location": "/loop"}))
    error = _refused(url, _allowing("127.0.0.1"))
    _assert_refusal(error, "more than 5 redirects")
    assert len(http.requests) == 6


def test_content_length_over_the_cap_is_refused_before_reading(http: LocalHttp) -> None:
    url = http.route("/big", Reply(body=b"x" * 2048))
    error = _refused(url, _allowing("127.0.0.1", max_bytes=1024))
    _assert_refusal(error, "exceeds ASSET_MAX_BYTES (1024 bytes)")
    assert error.failure_reason is FailureReason.INVALID_PAYLOAD


def _endless() -> Iterator[bytes]:
    for _ in range(10_000):
        yield b"y" * 4096


def test_streamed_body_over_the_cap_is_refused_while_streaming(http: LocalHttp) -> None:
    url = http.route("/stream", Reply(chunks=_endless))  # no Content-Length
    error = _refused(url, _allowing("127.0.0.1", max_bytes=100_000))
    _assert_refusal(error, "exceeds ASSET_MAX_BYTES (100000 bytes)")


def test_the_cap_counts_decompressed_bytes(http: LocalHttp) -> None:
    bomb = gzip.compress(b"\0" * 1_000_000)  # ~1 KB on the wire, 1 MB once decoded
    url = http.route("/bomb", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    error = _refused(url, _allowing("127.0.0.1", max_bytes=100_000))
    _assert_refusal(error, "exceeds ASSET_MAX_BYTES (100000 bytes)")


def test_a_silent_server_times_out_retryably(http: LocalHttp) -> None:
    url = http.route("/slow", Reply(body=PNG, delay=2.0))
    error = _refused(url, _allowing("127.0.0.1", timeout_seconds=0.3))
    assert (error.failure_type, error.retryable) == (FailureType.TIMEOUT, True)


def _drip() -> Iterator[bytes]:
    for _ in range(100):
        time.sleep(0.05)
        yield b"z" * 10


def test_a_trickling_server_hits_the_total_deadline(http: LocalHttp) -> None:
    # Every read arrives within the read timeout; only the whole-download deadline stops it.
    url = http.route("/drip", Reply(chunks=_drip))
    error = _refused(url, _allowing("127.0.0.1", timeout_seconds=0.5))
    assert (error.failure_type, error.failure_reason) == (
        FailureType.TIMEOUT,
        FailureReason.NETWORK_TIMEOUT,
    )
    assert error.retryable is True
    assert "ASSET_DOWNLOAD_TIMEOUT_SECONDS" in error.message


@pytest.mark.parametrize(
    ("status", "ftype", "retryable"),
    [
        (503, FailureType.SERVICE_ERROR, True),
        (500, FailureType.SERVICE_ERROR, True),
        (429, FailureType.RATE_LIMIT, True),
        (404, FailureType.VALIDATION_ERROR, False),
        (403, FailureType.AUTH_ERROR, False),
    ],
)
def test_upstream_http_errors_are_classified(
    http: LocalHttp, status: int, ftype: FailureType, retryable: bool
) -> None:
    url = http.route("/out.png", Reply(status, b"nope"))
    error = _refused(url, _allowing("127.0.0.1"))
    assert (error.failure_type, error.retryable, error.status_code) == (ftype, retryable, status)


def test_connection_refused_is_a_retryable_network_error(http: LocalHttp) -> None:
    port = http.port
    http.close()  # nothing listens there any more
    error = _refused(
        f"http://127.0.0.1:{port}/out.png?X-Amz-Signature=topsecret", _allowing("127.0.0.1")
    )
    assert (error.failure_type, error.retryable) == (FailureType.NETWORK_ERROR, True)
    assert "topsecret" not in str(error.to_dict())  # signed-URL queries never reach errors


def test_unresolvable_host_is_a_retryable_dns_error() -> None:
    def no_dns(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    error = _refused("https://gone.example/x.png", DownloadPolicy(resolve=no_dns))
    assert (error.failure_reason, error.retryable) == (FailureReason.DNS_RESOLUTION, True)


def test_dns_rebinding_is_caught_at_connect_time(http: LocalHttp) -> None:
    # The first answer (the URL check) is public; the second (the connection) is loopback.
    answers = itertools.chain([[PUBLIC_IP]], itertools.repeat(["127.0.0.1"]))
    http.route("/out.png", Reply(body=PNG))
    policy = DownloadPolicy(resolve=lambda host, port: next(answers))
    _assert_refusal(_refused(http.url("/out.png", host="rebind.example"), policy), "is loopback")
    assert http.requests == []


def test_connections_go_to_the_checked_address_not_a_fresh_lookup(http: LocalHttp) -> None:
    # "assets.invalid" has no DNS record: only the pinned, checked address can reach the server.
    http.route("/out.png", Reply(body=PNG))
    policy = DownloadPolicy(resolve=lambda host, port: ["127.0.0.1"], address_check=lambda a: None)
    assert _fetch(http.url("/out.png", host="assets.invalid"), policy) == PNG


def test_the_saver_surfaces_refusals_and_saves_nothing(tmp_path: Path) -> None:
    saver = LocalAssetSaver(tmp_path)
    job = JobData(id="j1", type="glif")
    with pytest.raises(ConnectorError, match="is link-local"):
        saver.save(RemoteUrl("http://169.254.169.254/latest/meta-data/iam"), job=job)
    assert list(tmp_path.iterdir()) == []


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (its own CA), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(("cert_name", "ok"), [("assets.invalid", True), ("other.invalid", False)])
def test_pinned_https_still_verifies_the_hostname(
    http: LocalHttp, tmp_path: Path, cert_name: str, ok: bool
) -> None:
    # The socket goes to the pinned IP, but TLS must still check the certificate against the
    # URL's host name: a certificate for another name is refused.
    cert, key = _certificate(tmp_path, cert_name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    http.enable_tls(context)
    http.route("/out.png", Reply(body=PNG))
    policy = DownloadPolicy(resolve=lambda host, port: ["127.0.0.1"], address_check=lambda a: None)
    session = guarded_session(policy)
    session.verify = str(cert)
    url = f"https://assets.invalid:{http.port}/out.png"
    if ok:
        with download(url, session=session, policy=policy) as staged:
            assert staged.file.read() == PNG
        return
    with pytest.raises(ConnectorError) as caught:
        download(url, session=session, policy=policy)
    assert caught.value.failure_reason is FailureReason.SSL_CERTIFICATE
