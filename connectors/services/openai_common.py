"""What the three OpenAI connectors share: settings, auth, the error-body mapping, refusals.

OpenAI answers every failure with `{"error": {"message", "type", "param", "code"}}`. The HTTP
status alone misleads twice: a 429 is either a rate limit (wait and retry) or an exhausted quota
(no retry can help), and a 400 is either a bad request or a safety refusal. `classify_openai_error`
reads the body to tell them apart; `refine_openai_error` applies it to the status-based error. The
provider's `x-should-retry` header can veto a retry but never revive a permanent body verdict (see
`_retryable`). `openai_client` builds the one `HttpClient` configuration the three connectors
share: the key, the `OPENAI_API` profile (this refinement and the `GET /models` probe). Pure
functions apart from that; the I/O is in the client.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import requests
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.assets.mime import mime_from_magic
from connectors.classify import should_retry_header
from connectors.errors import (
    Classification,
    ConnectorError,
    FailureReason,
    FailureType,
    require_secret,
)
from connectors.health import HealthCheckCapabilities
from connectors.protocol.http import (
    ApiProfile,
    BearerAuth,
    CallObserver,
    HttpClient,
    Probe,
    Timeouts,
)

__all__ = [
    "BASE64_REMOVED",
    "OPENAI_API",
    "OPENAI_CAPABILITIES",
    "OpenAIAuth",
    "OpenAISettings",
    "classify_openai_error",
    "error_info",
    "image_fields",
    "image_mime",
    "is_refusal",
    "openai_client",
    "refine_openai_error",
    "refusal_error",
    "strip_base64",
]

R = FailureReason
T = FailureType
BASE64_REMOVED = "[BASE64_DATA_REMOVED]"
OPENAI_CAPABILITIES = HealthCheckCapabilities(
    supportsBasicHealthCheck=True, basicHealthCheckEndpoint="/models"
)


class OpenAISettings(BaseSettings):
    """OpenAI settings from the worker's environment, OPENAI_* (an empty variable is unset)."""

    model_config = SettingsConfigDict(env_prefix="OPENAI_", env_ignore_empty=True, extra="ignore")

    api_key: SecretStr | None = None
    base_url: str = "https://api.openai.com/v1"
    timeout_seconds: float = Field(default=60.0, gt=0)  # read timeout of one request
    image_timeout_seconds: float = Field(default=120.0, gt=0)  # image generation is slower
    # The official SDK's names (OPENAI_ORG_ID, OPENAI_PROJECT_ID) are read too.
    organization: str | None = Field(
        default=None,
        validation_alias=AliasChoices("organization", "openai_organization", "openai_org_id"),
    )
    project: str | None = Field(
        default=None,
        validation_alias=AliasChoices("project", "openai_project", "openai_project_id"),
    )
    text_model: str = "gpt-4o-mini"
    responses_model: str = "gpt-4.1"
    image_model: str = "gpt-image-1"
    # Unset by default: reasoning models reject `max_tokens` and `temperature` outright.
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    responses_poll_interval_seconds: float = Field(default=5.0, gt=0)
    responses_timeout_seconds: float = Field(default=180.0, gt=0)  # the polling deadline


class OpenAIAuth(BearerAuth):
    """Bearer auth plus the optional `OpenAI-Organization` and `OpenAI-Project` headers."""

    def __init__(self, token: str, organization: str | None, project: str | None) -> None:
        super().__init__(token)
        self._extra = {
            name: value
            for name, value in (("OpenAI-Organization", organization), ("OpenAI-Project", project))
            if value
        }

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._extra)
        return super().__call__(request)


# Refusals open with the apology; matching only the head keeps an essay *about* content policy
# from failing as a refusal.
_REFUSAL_HEAD = 300
_REFUSAL = re.compile(
    r"i'?m sorry,? but i (can(?:no|')t|am unable to|won'?t)|"
    r"i (can(?:no|')t|am unable to|won'?t) (assist|help|create|generate|comply|fulfill|provide)|"
    r"i'?m (unable|not able) to (assist|help|create|generate|comply|fulfill)|"
    r"against (our|the|openai'?s) (content|usage) polic|"
    r"violates? (our|the|openai'?s) (content|usage) polic|"
    r"rejected by (the|our) safety system",
    re.IGNORECASE,
)
_SAFETY_ID = re.compile(r"\bwfr_[A-Za-z0-9]+")


def is_refusal(text: str) -> bool:
    """Whether model output is a policy refusal rather than an answer (the original's regexes)."""
    return bool(_REFUSAL.search(text.replace("\u2019", "'")[:_REFUSAL_HEAD]))


def refusal_error(
    message: str,
    *,
    service: str,
    context: Mapping[str, Any] | None = None,
    reason: FailureReason = R.SAFETY_FILTER,
) -> ConnectorError:
    """A non-retryable generation_refusal (safety_filter unless told), with any `wfr_` id."""
    extra = dict(context or {})
    found = _SAFETY_ID.search(message)
    if found:
        extra["safety_request_id"] = found.group(0)
    return Classification(T.GENERATION_REFUSAL, reason, False).error(
        f"OpenAI content policy refusal: {message}", service=service, context=extra
    )


_REFUSAL_CODES = frozenset(
    {"moderation_blocked", "content_policy_violation", "image_content_policy_violation"}
)
# Specific phrases only: a 400 about a parameter named `safety_identifier` is not a refusal.
_SAFETY_TEXT = re.compile(
    r"safety system|safety reasons|content policy|usage polic|flagged as", re.IGNORECASE
)
_CODES: dict[str, Classification] = {
    "insufficient_quota": Classification(T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
    "billing_hard_limit_reached": Classification(T.RESOURCE_LIMIT, R.INSUFFICIENT_CREDITS, False),
    "invalid_api_key": Classification(T.AUTH_ERROR, R.INVALID_API_KEY, False),
    "model_not_found": Classification(T.VALIDATION_ERROR, R.MODEL_NOT_FOUND, False),
    "context_length_exceeded": Classification(T.VALIDATION_ERROR, R.INVALID_PAYLOAD, False),
    "server_error": Classification(T.SERVICE_ERROR, R.SERVICE_UNAVAILABLE, True),
}
_REFUSAL_CLASS = Classification(T.GENERATION_REFUSAL, R.SAFETY_FILTER, False)
_INVALID_REQUEST = Classification(T.VALIDATION_ERROR, R.INVALID_REQUEST, False)


def _rate_limit(info: Mapping[str, Any]) -> Classification:
    text = f"{info.get('type')} {info.get('message')}".lower()
    if re.search(r"per day|\brpd\b|\btpd\b", text):
        reason = R.DAILY_QUOTA_EXCEEDED
    elif re.search(r"\btokens\b|\btpm\b", text):
        reason = R.TOKENS_PER_MINUTE
    else:
        reason = R.REQUESTS_PER_MINUTE
    return Classification(T.RATE_LIMIT, reason, True)


def classify_openai_error(status: int | None, info: Mapping[str, Any]) -> Classification | None:
    """Classify an OpenAI `error` object (with its HTTP status, if any); None: status decides."""
    code = str(info.get("code") or "")
    kind = str(info.get("type") or "")
    message = str(info.get("message") or "")
    if "insufficient_quota" in (code, kind) or "exceeded your current quota" in message:
        return _CODES["insufficient_quota"]
    if code in _REFUSAL_CODES or (_SAFETY_TEXT.search(message) and status in (400, None)):
        return _REFUSAL_CLASS  # includes `invalid_prompt` flagged "for safety reasons"
    if code == "rate_limit_exceeded" or status == 429:
        return _rate_limit(info)
    if code in _CODES:
        return _CODES[code]
    if status == 404 and re.search(r"\bmodel\b.*(does not exist|not found)", message, re.I):
        return _CODES["model_not_found"]
    if kind == "invalid_request_error" and status in (400, 422):
        return _INVALID_REQUEST  # a bad parameter: the same request fails the same way again
    return None


def error_info(body: Any) -> Mapping[str, Any]:
    """The `error` object of an OpenAI body, or an empty mapping."""
    info = body.get("error") if isinstance(body, Mapping) else None
    return info if isinstance(info, Mapping) else {}


def _retryable(found: Classification, should_retry: bool | None) -> bool:
    """Whether a body-classified error retries, given the `x-should-retry` header (if sent).

    The header may only make the verdict *stricter*. `x-should-retry: false` always wins, but
    `true` cannot revive a permanent verdict read from the body: an exhausted quota or billing
    cap, a content-policy refusal, a bad key, an unknown model or an invalid parameter fails the
    same way on every attempt (the SDK would retry a quota 429; the reference says don't). Only
    a status-only classification (the body said nothing specific) lets `true` turn it retryable.
    """
    return found.retryable and should_retry is not False


def refine_openai_error(
    error: ConnectorError, response: requests.Response, body: Any
) -> ConnectorError:
    """Reclassify a status-based error with OpenAI's error body (`_retryable`: the header)."""
    info = error_info(body)
    found = classify_openai_error(response.status_code, info)
    if found is None:
        return error  # status-only: `error_from_status` already applied `x-should-retry`
    verdict = found._replace(retryable=_retryable(found, should_retry_header(response.headers)))
    context: dict[str, Any] = {}
    if found is _REFUSAL_CLASS:
        match = _SAFETY_ID.search(str(info.get("message") or ""))
        if match:
            context["safety_request_id"] = match.group(0)
    context["openai_error"] = {k: info.get(k) for k in ("type", "code", "param")}
    return error.reclassified(verdict, context=context)


# What every OpenAI connector's client adds to plain HTTP: the error bodies above, and the
# MINIMAL health probe (`GET /models` answers 200 for a valid key, and costs nothing).
OPENAI_API = ApiProfile(refine=refine_openai_error, probe=Probe("models"))


def openai_client(
    settings: OpenAISettings,
    service: str,
    read_timeout: float,
    *,
    session: requests.Session | None = None,
    timeouts: Timeouts | None = None,
    on_call: CallObserver | None = None,
) -> HttpClient:
    """The HttpClient of an OpenAI connector; a missing key is a configuration_error."""
    key = require_secret(settings.api_key, "OPENAI_API_KEY", service=service)
    return HttpClient(
        service,
        settings.base_url,
        auth=OpenAIAuth(key, settings.organization, settings.project),
        timeouts=timeouts or Timeouts(connect=10.0, read=read_timeout),
        session=session,
        on_call=on_call,
        api=OPENAI_API,
    )


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=_-]{100,}")


def image_fields(images: list[dict[str, Any]]) -> dict[str, Any]:
    """`images`, and the first one's `mime_type` and `image_url` (or `image_base64` inline)."""
    first = images[0]
    link = (
        {"image_url": first["url"]} if "url" in first else {"image_base64": first["image_base64"]}
    )
    return {"images": images, "mime_type": first["mime_type"], **link}


def strip_base64(value: Any) -> Any:
    """A copy of `value` with every base64-looking run of 100+ characters replaced."""
    if isinstance(value, str):
        return _BASE64_RUN.sub(BASE64_REMOVED, value)
    if isinstance(value, Mapping):
        return {key: strip_base64(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strip_base64(item) for item in value]
    return value


_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


def image_mime(data: str, output_format: str | None) -> str:
    """The image's MIME type from its first bytes, else from `output_format`, else PNG."""
    text = data.partition(",")[2] if data.startswith("data:") else data
    try:
        head = base64.b64decode(text[:64] + "=" * (-len(text[:64]) % 4))
    except (binascii.Error, ValueError):
        head = b""
    return mime_from_magic(head) or _FORMATS.get((output_format or "").lower(), "image/png")
