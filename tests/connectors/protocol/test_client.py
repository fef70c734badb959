"""HttpClient composed into every HTTP mode; the hierarchy it keeps shallow; ApiProfile hooks."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.base import BaseConnector
from connectors.errors import ConnectorError, FailureReason, FailureType
from connectors.protocol import HTTP_MODES
from connectors.protocol.client import ApiProfile, HttpClient, HttpRequest, Probe, keep_error
from connectors.services.gemini import (
    GEMINI_API,
    GeminiImageConnector,
    GeminiImageEditConnector,
    GeminiSettings,
    GeminiTextConnector,
)
from connectors.services.glif import GlifConnector, GlifSettings
from connectors.services.mock import MockConnector
from connectors.services.openai_common import OPENAI_API, OpenAISettings
from connectors.services.openai_image import OpenAIImageConnector
from connectors.services.openai_responses import OpenAIResponsesConnector
from connectors.services.openai_text import OpenAITextConnector
from connectors.testing import fake_session, json_reply

SERVICES: list[type[BaseConnector[Any]]] = [
    GeminiTextConnector,
    GeminiImageConnector,
    GeminiImageEditConnector,
    GlifConnector,
    MockConnector,
    OpenAIImageConnector,
    OpenAIResponsesConnector,
    OpenAITextConnector,
]
SETTINGS: dict[type[Any], Any] = {
    GeminiTextConnector: GeminiSettings(api_key="k-gem-0123456789"),
    GeminiImageConnector: GeminiSettings(api_key="k-gem-0123456789"),
    GeminiImageEditConnector: GeminiSettings(api_key="k-gem-0123456789"),
    GlifConnector: GlifSettings(api_token="k-glif-0123456789"),
    OpenAIImageConnector: OpenAISettings(api_key="k-oai-0123456789"),
    OpenAIResponsesConnector: OpenAISettings(api_key="k-oai-0123456789"),
    OpenAITextConnector: OpenAISettings(api_key="k-oai-0123456789"),
}


@pytest.mark.parametrize("cls", SERVICES, ids=lambda c: c.__name__)
def test_every_service_is_at_most_three_levels_below_base_connector(
    cls: type[BaseConnector[Any]],
) -> None:
    assert cls.__mro__.index(BaseConnector) <= 3


@pytest.mark.parametrize("mode", HTTP_MODES, ids=lambda c: c.__name__)
def test_every_mode_subclasses_base_connector_directly(mode: type[Any]) -> None:
    assert mode.__bases__[0] is BaseConnector


@pytest.mark.parametrize("mode", HTTP_MODES[1:], ids=lambda c: c.__name__)
def test_only_the_one_shot_mode_has_parse_response(mode: type[Any]) -> None:
    assert not hasattr(mode, "parse_response")


@pytest.mark.parametrize("cls", list(SETTINGS), ids=lambda c: c.__name__)
def test_session_and_call_observer_reach_every_http_service_client(cls: type[Any]) -> None:
    session, _ = fake_session()
    seen: list[tuple[str, float]] = []
    connector = cls(SETTINGS[cls], session=session, on_call=lambda s, t: seen.append((s, t)))
    assert issubclass(cls, HTTP_MODES)
    assert isinstance(connector.client, HttpClient)
    assert connector.client.session is session
    assert connector.client.on_call is not None


def test_the_openai_connectors_share_one_api_profile() -> None:
    profiles = {
        cls(SETTINGS[cls]).client.api
        for cls in (OpenAIImageConnector, OpenAIResponsesConnector, OpenAITextConnector)
    }
    assert profiles == {OPENAI_API}
    assert OPENAI_API.probe == Probe("models")
    assert GeminiTextConnector(SETTINGS[GeminiTextConnector]).client.api is GEMINI_API


def test_a_client_without_a_profile_keeps_the_status_verdict_and_has_no_probe() -> None:
    session, adapter = fake_session(json_reply({"error": "out of credits"}, 429))
    client = HttpClient("plain", "https://api.test", session=session)
    assert client.api == ApiProfile(refine=keep_error, probe=None)
    assert client.probe() is True  # nothing to probe: nothing sent
    assert adapter.requests == []
    with pytest.raises(ConnectorError) as info:
        client.send(HttpRequest("GET", client.url("x")))
    assert (info.value.failure_type, info.value.service) == (FailureType.RATE_LIMIT, "plain")


def test_the_profile_refines_every_error_status_and_probes_through_send_probe() -> None:
    def out_of_credits(
        error: ConnectorError, response: requests.Response, body: Any
    ) -> ConnectorError:
        verdict = error.classification._replace(
            failure_type=FailureType.RESOURCE_LIMIT,
            failure_reason=FailureReason.INSUFFICIENT_CREDITS,
            retryable=False,
        )
        return error.reclassified(verdict, context={"refined_from": body})

    api = ApiProfile(refine=out_of_credits, probe=Probe("health", params={"deep": "0"}))
    session, adapter = fake_session(json_reply({"error": "credits"}, 429), json_reply({}, 200))
    seen: list[str] = []
    client = HttpClient(
        "svc", "https://api.test", session=session, api=api, on_call=lambda s, _: seen.append(s)
    )
    with pytest.raises(ConnectorError) as info:
        client.send(HttpRequest("POST", client.url("jobs")))
    assert info.value.failure_reason is FailureReason.INSUFFICIENT_CREDITS
    assert info.value.context["refined_from"] == {"error": "credits"}
    assert client.probe() is True
    assert adapter.last_url == "https://api.test/health?deep=0"
    assert adapter.timeouts[-1] == (10.0, 10.0)  # the probe's short read timeout
    assert seen == ["429", "200"]  # the probe is observed like any call: it is one


def test_a_redirected_probe_is_a_new_error_saying_why() -> None:
    session, _ = fake_session(json_reply({}, 302, {"Location": "https://elsewhere.test/"}))
    client = HttpClient(
        "svc", "https://api.test", session=session, api=ApiProfile(probe=Probe("p"))
    )
    with pytest.raises(ConnectorError) as info:
        client.probe()
    assert info.value.message.endswith("(a probe does not follow redirects)")
    assert info.value.status_code == 302
