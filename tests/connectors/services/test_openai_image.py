"""OpenAIImageConnector: Images API, base64 images saved through the asset saver."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.services.openai_image import OpenAIImageConnector
from tests.connectors.protocol.stream_fakes import Reply, ScriptedTransport, json_reply
from tests.connectors.services.openai_support import (
    IMAGES,
    PNG_B64,
    R,
    StubSaver,
    T,
    fails,
    job,
    kind,
    make,
)

pytestmark = pytest.mark.usefixtures("clean_openai_env")


def images_reply(*items: dict[str, Any]) -> Reply:
    usage = {"input_tokens": 3, "output_tokens": 272, "total_tokens": 275}
    return json_reply(
        {
            "created": 1,
            "data": list(items),
            "size": "1024x1024",
            "output_format": "png",
            "usage": usage,
        }
    )


def test_each_b64_image_is_saved_and_listed() -> None:
    saver = StubSaver()
    transport = ScriptedTransport().add(
        "POST", IMAGES, images_reply({"b64_json": PNG_B64}, {"b64_json": PNG_B64})
    )
    connector = make(OpenAIImageConnector, transport, assets=saver)
    result = connector.process_job(job("openai_image", prompt="a fox", n=2, quality="low"))
    assert transport.sent[0].json == {
        "prompt": "a fox",
        "n": 2,
        "quality": "low",
        "model": "gpt-image-1",
    }
    assert len(saver.saved) == 2
    assert saver.expects == ["image", "image"]
    data = result.data or {}
    assert data["image_url"] == "https://cdn.test/emp/job-openai_image_1.png"
    assert [i["url"] for i in data["images"]] == [
        f"https://cdn.test/emp/job-openai_image_{n}.png" for n in (1, 2)
    ]
    assert (data["size"], data["usage"]["total_tokens"]) == ("1024x1024", 275)
    assert len(result.output_files) == 2
    assert PNG_B64[:100] not in result.model_dump_json()


def test_dall_e_is_asked_for_base64_not_a_url() -> None:
    transport = ScriptedTransport().add("POST", IMAGES, images_reply({"b64_json": PNG_B64}))
    make(OpenAIImageConnector, transport, assets=StubSaver()).process_job(
        job("openai_image", prompt="x", model="dall-e-3")
    )
    assert transport.sent[0].json["response_format"] == "b64_json"


@pytest.mark.parametrize(
    "reply",
    [images_reply({"url": "https://x/1.png"}), images_reply(), json_reply({"created": 1})],
    ids=["url_only", "empty", "no_data"],
)
def test_reply_without_base64_images_is_a_response_error(reply: Reply) -> None:
    transport = ScriptedTransport().add("POST", IMAGES, reply)
    error = fails(
        make(OpenAIImageConnector, transport, assets=StubSaver()), job("openai_image", prompt="x")
    )
    assert kind(error) == (T.RESPONSE_ERROR, R.MISSING_EXPECTED_DATA, False)


def test_image_save_assets_false_returns_base64_inline() -> None:
    saver = StubSaver()
    transport = ScriptedTransport().add("POST", IMAGES, images_reply({"b64_json": PNG_B64}))
    result = make(OpenAIImageConnector, transport, assets=saver).process_job(
        job("openai_image", prompt="x", save_assets=False)
    )
    assert saver.saved == []
    assert (result.data or {})["image_base64"] == PNG_B64
