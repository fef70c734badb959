"""A1111Connector: AUTOMATIC1111 stable-diffusion-webui's API, `txt2img` and `img2img`.

One blocking `POST /sdapi/v1/txt2img` (or `img2img` when the payload has `init_images`) per
job; while it runs, a `ProgressPoller` reads `/sdapi/v1/progress` on a second connection. The
base64 images in the reply are saved through the asset saver; `info` (a JSON string) gives the
seed and the model. Errors are A1111's `{error, detail, body, errors}` bodies, classified in
`a1111_errors`. Env: A1111_BASE_URL (default http://127.0.0.1:7860), A1111_AUTH (`user:pass`,
the server's --api-auth; optional), A1111_TIMEOUT_SECONDS, A1111_PROGRESS_INTERVAL_SECONDS.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, ClassVar

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from requests.auth import AuthBase, HTTPBasicAuth

from connectors.assets import AssetSaver, Base64Data, LazyAssetSaver, SavedAsset
from connectors.errors import (
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    configuration_error,
)
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ProgressCallback, ServiceMetadata, report_progress
from connectors.protocol.http import (
    ApiProfile,
    CallObserver,
    HttpClient,
    HTTPConnector,
    HttpRequest,
    Probe,
    Timeouts,
    new_session,
)
from connectors.redact import register_secret
from connectors.services.a1111_errors import refine_a1111_error
from connectors.services.a1111_progress import PROGRESS_START, ProgressPoller
from connectors.services.openai_common import image_mime, strip_base64

__all__ = ["A1111_API", "A1111Connector", "A1111Payload", "A1111Settings", "parse_info"]

# `GET /sdapi/v1/options` answers only when the API is on (and the credentials pass): a cheap
# check that the server can take a job.
A1111_API = ApiProfile(refine=refine_a1111_error, probe=Probe("sdapi/v1/options"))


class A1111Settings(BaseSettings):
    """AUTOMATIC1111 settings from the worker's environment, A1111_* (empty counts as unset)."""

    model_config = SettingsConfigDict(env_prefix="A1111_", env_ignore_empty=True, extra="ignore")

    base_url: str = "http://127.0.0.1:7860"
    auth: SecretStr | None = None  # "user:pass", as given to the server's --api-auth
    timeout_seconds: float = Field(default=300.0, gt=0)  # read timeout of the blocking call
    progress_interval_seconds: float = Field(default=1.0, gt=0)


class A1111Payload(BaseModel):
    """A txt2img job, or img2img when `init_images` (base64 images) is given."""

    model_config = ConfigDict(extra="forbid")

    prompt: StrictStr = Field(min_length=1, pattern=r"\S")
    negative_prompt: StrictStr | None = None
    steps: int | None = Field(default=None, ge=1, le=150)
    width: int | None = Field(default=None, ge=64, le=2048, multiple_of=8)
    height: int | None = Field(default=None, ge=64, le=2048, multiple_of=8)
    seed: int | None = Field(default=None, ge=-1)
    sampler_name: StrictStr | None = Field(default=None, min_length=1)
    cfg_scale: float | None = Field(default=None, ge=1, le=30)
    init_images: list[StrictStr] | None = Field(default=None, min_length=1)

    @property
    def endpoint(self) -> str:
        """`img2img` when the job starts from images, else `txt2img`."""
        return "img2img" if self.init_images else "txt2img"

    def body(self) -> dict[str, Any]:
        """The request body: the given fields; images sent back, not kept on the server."""
        return {**self.model_dump(exclude_none=True), "send_images": True, "save_images": False}


def parse_info(info: Any) -> dict[str, Any]:
    """The `info` of a reply (a JSON-encoded string, sometimes already an object) as a dict."""
    if isinstance(info, dict):
        return info
    if not isinstance(info, str) or not info:
        return {}
    try:
        parsed = json.loads(info)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _settings() -> A1111Settings:
    try:
        return A1111Settings()
    except ValidationError as exc:
        names = sorted({f"A1111_{str(e['loc'][0]).upper()}" for e in exc.errors() if e["loc"]})
        raise configuration_error(
            f"Invalid AUTOMATIC1111 setting: {', '.join(names)}", variables=names
        ) from None


def basic_auth(secret: SecretStr | None, service: str) -> AuthBase | None:
    """HTTP Basic auth from `user:pass`, registered for redaction; None when unset."""
    if secret is None:
        return None
    value = secret.get_secret_value()
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise configuration_error(
            "A1111_AUTH must be user:pass", variables=["A1111_AUTH"], service=service
        )
    for text in (value, password, base64.b64encode(value.encode()).decode()):
        register_secret(text)  # kept out of every log line, error and result
    return HTTPBasicAuth(user, password)


class A1111Connector(HTTPConnector[A1111Payload]):
    """Runs txt2img / img2img on an AUTOMATIC1111 server and saves every image as an asset."""

    service_type: ClassVar[str] = "a1111"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities(
        supportsBasicHealthCheck=True, basicHealthCheckEndpoint="/sdapi/v1/options"
    )
    payload_model = A1111Payload

    def __init__(
        self,
        settings: A1111Settings | None = None,
        *,
        assets: AssetSaver | None = None,
        session: requests.Session | None = None,
        progress_session: Callable[[], requests.Session] | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or _settings()
        self.assets: AssetSaver = assets or LazyAssetSaver()
        self.auth = basic_auth(self.settings.auth, self.service_type)
        # A new session per job for the poller: its thread never shares a connection pool.
        self.progress_session = progress_session or (lambda: new_session(pool_size=1))
        client = HttpClient(
            self.service_type,
            self.settings.base_url,
            auth=self.auth,
            timeouts=timeouts or Timeouts(connect=10.0, read=self.settings.timeout_seconds),
            session=session,
            on_call=on_call,
            api=A1111_API,
        )
        super().__init__(client=client, **kwargs)

    def build_request(self, job: JobData, payload: A1111Payload) -> HttpRequest:
        return HttpRequest("POST", self.client.url(f"sdapi/v1/{payload.endpoint}"), payload.body())

    def call(
        self, request: HttpRequest, job: JobData, progress: ProgressCallback
    ) -> requests.Response:
        """Send the blocking generation while a second connection polls its progress."""
        with self._poller(job, progress):
            # Blocks until the images are done.
            return self.client.send(request, journal=job.journal)

    def _poller(self, job: JobData, progress: ProgressCallback) -> ProgressPoller:
        client = HttpClient(
            self.service_type,
            self.settings.base_url,
            auth=self.auth,
            timeouts=Timeouts(connect=5.0, read=5.0),
            session=self.progress_session(),
            api=A1111_API,
        )

        def report(value: float, message: str) -> None:
            report_progress(progress, job, value, "generating", message)

        report(PROGRESS_START, "Generating")
        return ProgressPoller(client, self.settings.progress_interval_seconds, report)

    def parse_response(
        self, response: requests.Response, job: JobData, payload: A1111Payload
    ) -> JobResult:
        body = self.client.json_body(response)
        images = body.get("images") if isinstance(body, dict) else None
        if not isinstance(images, list) or not images:
            raise self._missing("no `images` in the reply", body)
        if not all(isinstance(image, str) and image for image in images):
            raise self._missing("an image is not a base64 string", body)
        info = parse_info(body.get("info"))
        saved = [self._save(str(image), job) for image in images]
        return self._result(saved, info, payload)

    def _save(self, image: str, job: JobData) -> SavedAsset:
        mime = image_mime(image, None)
        return self.assets.save(Base64Data(image), job=job, mime_type=mime, expect="image")

    def _result(
        self, saved: list[SavedAsset], info: dict[str, Any], payload: A1111Payload
    ) -> JobResult:
        model = info.get("sd_model_name") or info.get("sd_model_hash")
        data: dict[str, Any] = {
            "content_type": "image",
            "image_url": saved[0].url,
            "images": [asset.url for asset in saved],
            "mime_type": saved[0].mime_type,
            "seed": info.get("seed"),
            "all_seeds": info.get("all_seeds"),
            "model_used": model,
            "mode": payload.endpoint,
            "info": strip_base64(info),
        }
        return JobResult(
            data=data,
            metadata={"service": "a1111", "connector": self.service_type},
            output_files=[asset.output_file() for asset in saved],
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                model_used=model,
                processing_stats={"images": len(saved), "seed": info.get("seed")},
            ),
        )

    def _missing(self, problem: str, body: Any) -> ConnectorError:
        found = Classification(FailureType.RESPONSE_ERROR, FailureReason.MISSING_EXPECTED_DATA)
        return found.error(
            f"AUTOMATIC1111 reply unusable: {problem}",
            service=self.service_type,
            context={"raw_response": strip_base64(body)},
        )
