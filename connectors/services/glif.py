"""GlifConnector: run a Glif workflow through the Simple API (synchronous, one POST).

Glif answers 200 OK even when the workflow fails, with the failure in an `error` field, so the
body is checked for `error` before anything else. Env: GLIF_API_TOKEN (required), GLIF_BASE_URL,
GLIF_TIMEOUT_SECONDS, GLIF_HEALTH_CHECK_WORKFLOW_ID. GLIF_RETRY_ATTEMPTS and
GLIF_MAX_CONCURRENT_JOBS belong to the service mapping (config/service-mapping.json): Celery
retries, the pool sets concurrency.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.assets import AssetSaver, LazyAssetSaver, RemoteUrl, SavedAsset
from connectors.errors import (
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    require_secret,
)
from connectors.health import HealthCheckCapabilities, HealthCheckClass
from connectors.models import JobData, JobResult, ServiceMetadata
from connectors.protocol.auth import BearerAuth
from connectors.protocol.client import CallObserver, HttpClient, HttpRequest, Timeouts
from connectors.protocol.http import HTTPConnector
from connectors.rules import Rule, classify_message, rx
from connectors.services.glif_output import MEDIA_KINDS, glif_output

__all__ = [
    "GLIF_FALLBACK",
    "GLIF_RULES",
    "GlifConnector",
    "GlifPayload",
    "GlifSettings",
    "classify_glif_error",
]

R = FailureReason
T = FailureType
ATTRIBUTION = "powered by glif.app"


class GlifSettings(BaseSettings):
    """Glif settings from the worker's environment (an empty variable counts as unset)."""

    model_config = SettingsConfigDict(env_prefix="GLIF_", env_ignore_empty=True, extra="ignore")

    api_token: SecretStr | None = None
    base_url: str = "https://simple-api.glif.app"
    timeout_seconds: float = Field(default=60.0, gt=0)
    health_check_workflow_id: str | None = None


class GlifPayload(BaseModel):
    """A Glif job: which workflow to run and its string inputs (positional or named)."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str = Field(min_length=1, pattern=r"\S")
    inputs: list[str] | dict[str, str]
    visibility: Literal["PUBLIC", "PRIVATE"] | None = None
    strict: StrictBool | None = None
    save_assets: StrictBool = True

    @field_validator("workflow_id", mode="before")
    @classmethod
    def _workflow_id_is_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("must be a non-empty string")
        return value.strip()

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs_are_strings(cls, value: Any) -> Any:
        # One clear message instead of pydantic's per-union-branch noise.
        if isinstance(value, list):
            bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
            if bad:
                raise ValueError(f"item {bad[0]} must be a string (Glif accepts string inputs)")
            return value
        if isinstance(value, dict):
            bad_keys = [k for k, v in value.items() if not isinstance(v, str) or not k]
            if bad_keys:
                raise ValueError(f"input {bad_keys[0]!r} must be a string")
            return value
        raise ValueError("must be a list of strings or an object of string values")


# The record's matrix as rules for the shared engine, first match wins. The order matters: credits
# before rate limits ("quota exceeded" is out of credits here), "not found" before the input rules,
# refusal words before "not allowed".
GLIF_RULES: tuple[Rule, ...] = (
    # Not a bare "credit": "0 credits left this minute" is a rate limit, and must retry.
    Rule(
        T.RESOURCE_LIMIT,
        rx(r"insufficient credits|not enough credits|out of credits|quota exceeded"),
        (),
        R.INSUFFICIENT_CREDITS,
    ),
    Rule(
        T.AUTH_ERROR,
        rx(r"authenticat|unauthori[sz]ed|invalid token|api token|forbidden"),
        (),
        R.INVALID_API_KEY,
    ),
    Rule(
        T.VALIDATION_ERROR,
        rx(r"invalid workflow|workflow not found|glif not found|not found|does not exist"),
        (),
        R.INVALID_PAYLOAD,
    ),
    Rule(
        T.VALIDATION_ERROR,
        rx(r"not enough inputs|missing input|required input"),
        (),
        R.MISSING_REQUIRED_FIELD,
    ),
    Rule(T.VALIDATION_ERROR, rx(r"invalid input|only string values"), (), R.INVALID_PAYLOAD),
    Rule(T.RATE_LIMIT, rx(r"rate limit|too many requests"), (), R.REQUESTS_PER_MINUTE),
    Rule(T.TIMEOUT, rx(r"timed? ?out|timeout"), (), R.PROCESSING_TIMEOUT),
    Rule(
        T.GENERATION_REFUSAL,
        rx(r"nsfw|content policy|safety|moderation|blocked"),
        (),
        R.POLICY_VIOLATION,
    ),
    Rule(
        T.VALIDATION_ERROR,
        rx(r"banned|not allowed|not available via api"),
        (),
        R.UNSUPPORTED_OPERATION,
    ),
    Rule(T.NETWORK_ERROR, rx(r"network|connection"), (), R.CONNECTION_FAILED),
)
# A workflow that failed for a reason the matrix does not name: the provider's fault, retried.
GLIF_FALLBACK = Classification(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE)


def classify_glif_error(message: str) -> Classification:
    """Classify the text of a Glif `error` field (pure; the record's matrix)."""
    return classify_message(message, rules=GLIF_RULES, fallback=GLIF_FALLBACK)


def parse_price(value: Any) -> float | None:
    """Glif documents `price` as a string ("2.1000875"); some replies send a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class GlifConnector(HTTPConnector[GlifPayload]):
    """Runs Glif workflows through the Simple API and returns the record's result shape."""

    service_type: ClassVar[str] = "glif"
    version: ClassVar[str] = "1.0.0"
    health_check_class: ClassVar[HealthCheckClass] = HealthCheckClass.MINIMAL
    capabilities: ClassVar[HealthCheckCapabilities] = HealthCheckCapabilities(
        supportsBasicHealthCheck=True,
        supportsJobStatusQuery=False,  # Glif has no job query API
        supportsJobCancellation=False,
        supportsServiceRestart=False,
        supportsQueueIntrospection=False,
    )
    payload_model = GlifPayload

    def __init__(
        self,
        settings: GlifSettings | None = None,
        *,
        assets: AssetSaver | None = None,
        session: requests.Session | None = None,
        timeouts: Timeouts | None = None,
        on_call: CallObserver | None = None,
        **kwargs: Any,
    ) -> None:
        self.settings = settings or GlifSettings()
        token = require_secret(self.settings.api_token, "GLIF_API_TOKEN", service=self.service_type)
        # Built from CLOUD_STORAGE_* on first save, so constructing a connector is free.
        self.assets: AssetSaver = assets or LazyAssetSaver()
        client = HttpClient(
            self.service_type,
            self.settings.base_url,
            auth=BearerAuth(token),
            timeouts=timeouts or Timeouts(connect=10.0, read=self.settings.timeout_seconds),
            session=session,
            on_call=on_call,
        )
        super().__init__(client=client, **kwargs)

    def build_request(self, job: JobData, payload: GlifPayload) -> HttpRequest:
        body: dict[str, Any] = {"id": payload.workflow_id, "inputs": payload.inputs}
        if payload.visibility:
            body["visibility"] = payload.visibility
        params = {"strict": "1"} if payload.strict else None
        return HttpRequest("POST", self.client.url(), json=body, params=params)

    def parse_response(
        self, response: requests.Response, job: JobData, payload: GlifPayload
    ) -> JobResult:
        body = self.client.json_body(response)
        if not isinstance(body, dict):
            raise self._bad_response(f"expected a JSON object, got {type(body).__name__}", body)
        if body.get("error"):
            raise self._workflow_error(str(body["error"]), payload, body)
        price = parse_price(body.get("price"))
        data = glif_output(body, self.service_type)
        data["raw_response"] = {k: body.get(k) for k in ("output", "outputFull", "price", "nodes")}
        metadata: dict[str, Any] = {
            "service": "glif",
            "connector": "glif",
            "workflow_id": payload.workflow_id,
            "price": price,
            "attribution": ATTRIBUTION,
        }
        output_files = []
        if payload.save_assets and data["content_type"] in MEDIA_KINDS:
            saved = self._save(data, job)
            output_files.append(saved.output_file())
            metadata["saved_asset"] = {
                "filePath": saved.key,
                "fileName": saved.key.rsplit("/")[-1],
                "fileUrl": saved.url,
                "mimeType": saved.mime_type,
            }
        return JobResult(
            success=True,
            data=data,
            output_files=output_files,
            metadata=metadata,
            service_metadata=ServiceMetadata(
                service_version=self.version,
                service_type=self.service_type,
                processing_stats={"price": price},
            ),
        )

    def _save(self, data: dict[str, Any], job: JobData) -> SavedAsset:
        # The provider's URL stays in raw_response; the result points at the user's own bucket.
        key = "image_url" if data["content_type"] == "image" else "asset_url"
        # `expect`: an "image" that turns out to be a web page must not land on the user's CDN.
        saved = self.assets.save(RemoteUrl(data[key]), job=job, expect=data["content_type"])
        data[key] = saved.url
        data["mime_type"] = saved.mime_type
        return saved

    def _workflow_error(
        self, message: str, payload: GlifPayload, body: dict[str, Any]
    ) -> ConnectorError:
        return classify_glif_error(message).error(
            f"Glif workflow {payload.workflow_id} failed: {message}",
            status_code=200,
            service=self.service_type,
            context={
                "workflow_id": payload.workflow_id,
                "inputs": payload.inputs,
                "glif_error": message,
                "raw_response": body,
            },
        )

    def _bad_response(self, problem: str, body: Any) -> ConnectorError:
        return Classification(T.RESPONSE_ERROR, R.INVALID_RESPONSE_FORMAT).error(
            f"Glif returned an unusable response: {problem}",
            service=self.service_type,
            context={"raw_response": body},
        )

    def health_probe(self) -> bool:
        # With GLIF_HEALTH_CHECK_WORKFLOW_ID: run that cheap workflow, which must succeed.
        # Without: a call with no workflow id, which Glif answers 200 + `error` for a valid token
        # without running anything, and 401 for a bad one (raised by `send`).
        workflow = self.settings.health_check_workflow_id or ""
        body = {"id": workflow, "inputs": ["health-check"] if workflow else []}
        probe = HttpRequest("POST", self.client.url(), json=body)
        reply = self.client.json_body(self.client.send_probe(probe))
        error = reply.get("error") if isinstance(reply, dict) else None
        if workflow and error:
            raise classify_glif_error(str(error)).error(
                f"Glif health-check workflow {workflow} failed: {error}",
                status_code=200,
                service=self.service_type,
            )
        return True

    def periodic_health_check_allowed(self) -> bool:
        # Only a configured health-check workflow is a call the operator chose to pay for on a
        # timer; the no-id call is undocumented, so it runs at start and on demand only.
        return bool(self.settings.health_check_workflow_id)
