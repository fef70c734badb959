"""Real servers for the asset tests: a moto S3 server and a scriptable HTTP server, both local.

The moto server speaks S3 over real HTTP, so the saver's boto3 client, multipart uploads and
presigned URLs are exercised exactly as against AWS, R2 or MinIO. The HTTP server plays the
provider's file host (and, for error tests, a misbehaving S3 endpoint).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from connectors.assets import build_s3_client
from connectors.assets.s3 import S3Client
from connectors.models import JobData

SECRET_KEY = "moto-secret-key-never-in-errors"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Reply:
    """A scripted HTTP response: a fixed body, or chunks produced on demand (no length)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Callable[[], Iterator[bytes]] | None = None
    delay: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    """Clients that give up mid-reply (size cap, timeouts) are expected, not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class LocalHttp:
    """A threaded HTTP server on 127.0.0.1 that answers each path with a scripted Reply."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.fallback: Reply | None = None
        self.requests: list[str] = []
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, reply: Reply) -> str:
        self.routes[path] = reply
        return self.url(path)

    def enable_tls(self, context: ssl.SSLContext) -> None:
        """Serve HTTPS from now on (new connections only)."""
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # so botocore's Expect: 100-continue is answered

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_PUT(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)  # consume the upload so the client reads the reply
                owner.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                reply = owner.routes.get(path) or owner.fallback or Reply(404, b"not found")
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is None:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Connection", "close")  # the body ends when the socket does
                self.end_headers()
                try:
                    for chunk in reply.chunks():
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (size cap, deadline): expected in those tests
                self.close_connection = True

        return Handler


@pytest.fixture(scope="package")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server over real HTTP on 127.0.0.1 (dummy credentials, no ~/.aws files)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "AKIAMOTOTESTKEY00001")
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="package")
def s3_client(moto_endpoint: str) -> S3Client:
    """The saver's own client builder, pointed at the moto server."""
    return build_s3_client(endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture(scope="package")
def s3_admin(moto_endpoint: str) -> Any:
    """A plain boto3 client for test set-up and inspection (create buckets, read objects)."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(s3_admin: Any) -> str:
    """A fresh, empty bucket per test."""
    name = f"assets-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def http() -> Iterator[LocalHttp]:
    """A scriptable HTTP server on 127.0.0.1 (the provider's file host)."""
    server = LocalHttp()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def job() -> JobData:
    return JobData(id="job-123", type="glif", payload={"workflow_id": "wf"})
