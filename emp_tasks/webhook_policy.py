"""Where a job's webhooks may go: the settings, the `ctx.webhook` shape, and the SSRF check.

A webhook URL is checked at submit and again before every delivery attempt, with the rules of
asset downloads (connectors.assets.netguard): http(s) only, and every address the host resolves
to must be public - private, loopback, link-local and reserved ones are refused - unless the
host (or `host:port`) is on EMP_WEBHOOK_ALLOW_HOSTS. The delivery then connects through
netguard's pinned session, to the very address that passed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.assets.netguard import DownloadPolicy, display_url, pinned_address
from connectors.errors import ConnectorError, configuration_error, validation_error
from emp_tasks.events import EVENT_NAMES

__all__ = [
    "DEFAULT_EVENTS",
    "WebhookSettings",
    "WebhookTarget",
    "check_url",
    "parse_target",
    "target_for",
]

DEFAULT_EVENTS = ("complete_job", "fail_job")
_SCHEMES = {"http": 80, "https": 443}
_FIELD = "ctx.webhook"


def _number(env: Mapping[str, str], name: str, default: str) -> float:
    raw = (env.get(name) or default).strip()
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise configuration_error(f"{name} must be a number >= 0, not {raw!r}", variables=[name])
    return value


def _delays(env: Mapping[str, str]) -> tuple[float, ...]:
    raw = env.get("EMP_WEBHOOK_RETRY_DELAYS") or "5,300,1800,7200,18000,36000"
    try:
        delays = tuple(float(item) for item in raw.split(",") if item.strip())
    except ValueError:
        delays = ()
    if not delays or min(delays) < 0:
        raise configuration_error(
            f"EMP_WEBHOOK_RETRY_DELAYS must be seconds >= 0, comma-separated, not {raw!r}",
            variables=["EMP_WEBHOOK_RETRY_DELAYS"],
        )
    return delays


@dataclass(frozen=True)
class WebhookSettings:
    """Webhook settings from the environment (EMP_WEBHOOK_*), read where they are used."""

    allow_hosts: frozenset[str] = frozenset()
    timeout_seconds: float = 15.0
    # Waits before the 2nd, 3rd, ... attempt (the 1st is immediate); the last one repeats.
    retry_delays: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000)
    max_attempts: int = 8
    url: str | None = None  # worker-wide, for jobs without ctx.webhook
    events: tuple[str, ...] = DEFAULT_EVENTS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        hosts = (
            item.strip().lower() for item in (env.get("EMP_WEBHOOK_ALLOW_HOSTS") or "").split(",")
        )
        attempts = _number(env, "EMP_WEBHOOK_MAX_ATTEMPTS", "8")
        events = [e.strip() for e in (env.get("EMP_WEBHOOK_EVENTS") or "").split(",") if e.strip()]
        return cls(
            allow_hosts=frozenset(host for host in hosts if host),
            timeout_seconds=_number(env, "EMP_WEBHOOK_TIMEOUT_SECONDS", "15") or 15.0,
            retry_delays=_delays(env),
            max_attempts=max(1, int(attempts)),
            url=(env.get("EMP_WEBHOOK_URL") or "").strip() or None,
            events=_events(events, "EMP_WEBHOOK_EVENTS") if events else DEFAULT_EVENTS,
        )

    def policy(self) -> DownloadPolicy:
        """The netguard policy a webhook URL is checked and connected under."""
        return DownloadPolicy(
            allow_hosts=self.allow_hosts,
            timeout_seconds=self.timeout_seconds,
            connect_timeout_seconds=min(10.0, self.timeout_seconds),
        )


@dataclass(frozen=True)
class WebhookTarget:
    """One job's webhook: the URL and the events it wants."""

    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS


def _events(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(e, str) for e in value):
        raise validation_error(field, "must be a list of event names")
    unknown = sorted(set(value) - set(EVENT_NAMES))
    if unknown:
        raise validation_error(
            field, f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENT_NAMES)}"
        )
    return tuple(dict.fromkeys(value))


def check_url(url: str, settings: WebhookSettings, field: str = f"{_FIELD}.url") -> None:
    """Refuse a URL that is not http(s) or whose host resolves to a non-public address."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        raise validation_error(field, "is not a URL") from None
    if parts.username or parts.password:  # the URL is stored with the job and shown in events
        raise validation_error(field, "may not carry credentials (user:password@)")
    if scheme not in _SCHEMES:
        raise validation_error(field, f"scheme {scheme or '(none)'!r} not allowed (http or https)")
    if not host:
        raise validation_error(field, "has no host")
    try:
        pinned_address(host.rstrip(".").lower(), port or _SCHEMES[scheme], settings.policy(), url)
    except ConnectorError as exc:
        # netguard words it for downloads ("Asset download refused: <why>"); keep the why.
        why = exc.message.split(": ", 1)[-1]
        if exc.retryable:  # the host did not resolve: perhaps only for now
            raise exc.reclassified(exc.classification, f"{field}: {why}") from None
        raise validation_error(
            field,
            f"refused, {why}; a private or loopback receiver must be on EMP_WEBHOOK_ALLOW_HOSTS",
            context={"url": display_url(url)},
        ) from None


def parse_target(value: Any) -> WebhookTarget:
    """`ctx.webhook` as a target: `{"url": ..., "events": [...]}`, the URL not yet checked."""
    if not isinstance(value, Mapping):
        raise validation_error(_FIELD, 'must be an object: {"url": "...", "events": [...]}')
    unknown = sorted(set(value) - {"url", "events"})
    if unknown:
        raise validation_error(f"{_FIELD}.{unknown[0]}", "is not a webhook setting (url, events)")
    url = value.get("url")
    if not isinstance(url, str) or not url.strip():
        raise validation_error(f"{_FIELD}.url", "is required (an http or https URL)")
    events = value.get("events")
    chosen = DEFAULT_EVENTS if events is None else _events(events, f"{_FIELD}.events")
    return WebhookTarget(url=url.strip(), events=chosen)


def target_for(ctx: Any, settings: WebhookSettings) -> WebhookTarget | None:
    """The job's webhook: `ctx.webhook`, else the worker-wide EMP_WEBHOOK_URL, else None."""
    if isinstance(ctx, Mapping) and ctx.get("webhook") is not None:
        return parse_target(ctx["webhook"])
    if settings.url:
        return WebhookTarget(url=settings.url, events=settings.events)
    return None
