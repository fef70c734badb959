"""Webhook targets: the `ctx.webhook` shape and the SSRF rules for its URL."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import ConnectorError
from emp_tasks.webhook_policy import (
    DEFAULT_EVENTS,
    WebhookSettings,
    WebhookTarget,
    check_url,
    parse_target,
    target_for,
)

OPEN = WebhookSettings()
LOCAL = WebhookSettings(allow_hosts=frozenset({"127.0.0.1"}))
ONE_PORT = WebhookSettings(allow_hosts=frozenset({"127.0.0.1:8080"}))


@pytest.mark.parametrize(
    ("url", "settings", "says"),
    [
        ("ftp://example.com/hook", OPEN, "scheme 'ftp' not allowed"),
        ("file:///etc/passwd", OPEN, "scheme 'file' not allowed"),
        ("http:///hook", OPEN, "has no host"),
        ("https://user:pw@93.184.216.34/hook", OPEN, "may not carry credentials"),
        ("http://127.0.0.1:8080/hook", OPEN, "is loopback"),
        ("http://[::1]/hook", OPEN, "is loopback"),
        ("http://[::ffff:127.0.0.1]/hook", OPEN, "is loopback"),
        ("http://10.1.2.3/hook", OPEN, "is private"),
        ("http://192.168.0.10/hook", OPEN, "is private"),
        ("http://169.254.169.254/latest/meta-data", OPEN, "is link-local"),
        ("http://240.0.0.1/hook", OPEN, "is reserved"),
        ("http://0.0.0.0/hook", OPEN, "is unspecified"),
        ("http://127.0.0.2:8080/hook", LOCAL, "is loopback"),  # another loopback host
        ("http://127.0.0.1:8081/hook", ONE_PORT, "is loopback"),  # another port
    ],
)
def test_urls_that_could_reach_internal_services_are_refused(
    url: str, settings: WebhookSettings, says: str
) -> None:
    with pytest.raises(ConnectorError) as caught:
        check_url(url, settings)
    assert says in caught.value.message
    assert "ctx.webhook.url" in caught.value.message
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        ("https://93.184.216.34/hooks/emp", OPEN),
        ("http://127.0.0.1:8080/hook", LOCAL),
        ("http://127.0.0.1:8080/hook", ONE_PORT),
    ],
)
def test_public_and_allow_listed_urls_pass(url: str, settings: WebhookSettings) -> None:
    check_url(url, settings)


def test_the_refusal_says_which_setting_allows_a_private_receiver() -> None:
    with pytest.raises(ConnectorError, match="EMP_WEBHOOK_ALLOW_HOSTS"):
        check_url("http://127.0.0.1/hook", OPEN)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("http://example.com", "ctx.webhook"),
        ({"events": ["fail_job"]}, "ctx.webhook.url"),
        ({"url": ""}, "ctx.webhook.url"),
        ({"url": "https://example.com", "secret": "x"}, "ctx.webhook.secret"),
        ({"url": "https://example.com", "events": "fail_job"}, "ctx.webhook.events"),
        ({"url": "https://example.com", "events": ["job_done"]}, "ctx.webhook.events"),
    ],
)
def test_a_malformed_webhook_names_the_field(value: Any, field: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        parse_target(value)
    assert caught.value.context["field"] == field


def test_events_default_to_complete_and_fail() -> None:
    target = parse_target({"url": " https://example.com/h "})
    assert target == WebhookTarget("https://example.com/h", DEFAULT_EVENTS)
    assert DEFAULT_EVENTS == ("complete_job", "fail_job")


def test_the_jobs_own_webhook_wins_over_the_worker_wide_one() -> None:
    settings = WebhookSettings.from_env(
        {"EMP_WEBHOOK_URL": "https://fleet.example/h", "EMP_WEBHOOK_EVENTS": "fail_job"}
    )
    own = {"webhook": {"url": "https://own.example/h", "events": ["retry_job"]}}
    assert target_for(own, settings) == WebhookTarget("https://own.example/h", ("retry_job",))
    assert target_for({}, settings) == WebhookTarget("https://fleet.example/h", ("fail_job",))
    assert target_for(None, WebhookSettings()) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EMP_WEBHOOK_RETRY_DELAYS", "5,soon"),
        ("EMP_WEBHOOK_RETRY_DELAYS", "-1"),
        ("EMP_WEBHOOK_MAX_ATTEMPTS", "many"),
        ("EMP_WEBHOOK_TIMEOUT_SECONDS", "-3"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConnectorError) as caught:
        WebhookSettings.from_env({name: value})
    assert caught.value.context["variables"] == [name]


def test_allow_hosts_are_read_as_a_lower_case_list() -> None:
    settings = WebhookSettings.from_env({"EMP_WEBHOOK_ALLOW_HOSTS": " LocalHost, 127.0.0.1:9 ,"})
    assert settings.allow_hosts == frozenset({"localhost", "127.0.0.1:9"})
