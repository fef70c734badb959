"""The webuiapi client against the AUTOMATIC1111 emulator: where they differ, the emulator errs.

`webuiapi.WebUIApi(host=..., port=...)` must decode the emulator's images with PIL, parse its
`info` string into a dict, send img2img's init images in the form the emulator accepts, and
raise its own error (`RuntimeError(status, body)`) on the emulator's error replies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import webuiapi
from PIL import Image

from emp_tasks.sandbox.a1111 import A1111Emulator

AUTH = ("artist", "fidelity-pass-41")


@pytest.fixture(scope="module")
def server() -> Iterator[A1111Emulator]:
    with A1111Emulator(step_seconds=0.005) as emulator:
        yield emulator


@pytest.fixture
def emu(server: A1111Emulator) -> A1111Emulator:
    server.reset()
    return server


@pytest.fixture
def api(emu: A1111Emulator) -> webuiapi.WebUIApi:
    return webuiapi.WebUIApi(host="127.0.0.1", port=emu.port)


def test_txt2img_decodes_images_and_info(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(prompt="a red fox", steps=5, width=64, height=64, seed=42)
    assert isinstance(result.image, Image.Image)
    assert result.image.size == (64, 64)
    assert result.info["seed"] == 42
    assert result.info["sd_model_name"] == "v1-5-pruned-emaonly"
    assert result.parameters["prompt"] == "a red fox"


def test_img2img_sends_init_images_the_emulator_accepts(
    api: webuiapi.WebUIApi, emu: A1111Emulator
) -> None:
    source = Image.new("RGB", (32, 32), "red")
    result = api.img2img(images=[source], prompt="bluer", steps=3, width=64, height=64)
    assert result.image.size == (64, 64)
    sent = emu.calls("/sdapi/v1/img2img")[0].body_json
    assert str(sent["init_images"][0]).startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("fault", "status", "error"),
    [("oom", 500, "OutOfMemoryError"), ("server_error", 500, "RuntimeError")],
)
def test_error_replies_raise_webuiapis_runtime_error(
    api: webuiapi.WebUIApi, emu: A1111Emulator, fault: str, status: int, error: str
) -> None:
    emu.queue_faults([{"kind": fault}])
    with pytest.raises(RuntimeError) as info:
        api.txt2img(prompt="x", steps=4)
    code, body = info.value.args
    assert code == status
    assert json.loads(body)["error"] == error


def test_a_server_without_api_raises_with_fastapis_404() -> None:
    with A1111Emulator(api=False) as emu:
        api = webuiapi.WebUIApi(host="127.0.0.1", port=emu.port)
        with pytest.raises(RuntimeError) as info:
            api.txt2img(prompt="x")
        assert info.value.args[0] == 404
        assert json.loads(info.value.args[1]) == {"detail": "Not Found"}


def test_basic_auth_through_set_auth() -> None:
    with A1111Emulator(tokens=[":".join(AUTH)], step_seconds=0.005) as emu:
        api = webuiapi.WebUIApi(host="127.0.0.1", port=emu.port)
        with pytest.raises(RuntimeError) as info:
            api.txt2img(prompt="x", steps=2)
        assert info.value.args[0] == 401
        api.set_auth(*AUTH)
        assert api.txt2img(prompt="x", steps=2).image is not None


def test_options_and_models_parse(api: webuiapi.WebUIApi) -> None:
    assert api.get_options()["samples_format"] == "png"
    assert api.get_sd_models()[0]["model_name"] == "v1-5-pruned-emaonly"
