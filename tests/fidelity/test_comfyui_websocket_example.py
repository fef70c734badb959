"""ComfyUI's own `script_examples/websockets_api_example.py` flow, run against the emulator.

As the example does it: queue a prompt with a client id over urllib, listen with
`websocket.WebSocket().connect("ws://.../ws?clientId=...")`, read frames (binary previews
skipped) until `executing` with `node: null` for our prompt id, then read `/history/<id>` and
fetch every output image from `/view`. The emulator must satisfy an unmodified client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from emp_tasks.sandbox.comfyui import ComfyUIEmulator
from emp_tasks.sandbox.png import read_png_size

# The example's workflow, as it ships (with its two edits: the text and the seed).
EXAMPLE_PROMPT: dict[str, Any] = {
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "cfg": 8,
            "denoise": 1,
            "latent_image": ["5", 0],
            "model": ["4", 0],
            "negative": ["7", 0],
            "positive": ["6", 0],
            "sampler_name": "euler",
            "scheduler": "normal",
            "seed": 5,
            "steps": 20,
        },
    },
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.ckpt"},
    },
    "5": {
        "class_type": "EmptyLatentImage",
        "inputs": {"batch_size": 1, "height": 512, "width": 512},
    },
    "6": {
        "class_type": "CLIPTextEncode",
        "inputs": {"clip": ["4", 1], "text": "masterpiece best quality man"},
    },
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "bad hands"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ccniyUI", "images": ["8", 0]}},
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with ComfyUIEmulator() as emulator:
        yield emulator.url.removeprefix("http://")


# -- the example's functions, as written there (server_address and client_id passed in) --------


def queue_prompt(server_address: str, client_id: str, prompt: dict[str, Any]) -> Any:
    p = {"prompt": prompt, "client_id": client_id}
    data = json.dumps(p).encode("utf-8")
    req = urllib.request.Request(f"http://{server_address}/prompt", data=data)
    return json.loads(urllib.request.urlopen(req).read())


def get_image(server_address: str, filename: str, subfolder: str, folder_type: str) -> bytes:
    data = {"filename": filename, "subfolder": subfolder, "type": folder_type}
    url_values = urllib.parse.urlencode(data)
    with urllib.request.urlopen(f"http://{server_address}/view?{url_values}") as response:
        body: bytes = response.read()
        return body


def get_history(server_address: str, prompt_id: str) -> Any:
    with urllib.request.urlopen(f"http://{server_address}/history/{prompt_id}") as response:
        return json.loads(response.read())


def get_images(
    server_address: str, client_id: str, ws: websocket.WebSocket, prompt: dict[str, Any]
) -> tuple[dict[str, list[bytes]], list[Any]]:
    prompt_id = queue_prompt(server_address, client_id, prompt)["prompt_id"]
    output_images: dict[str, list[bytes]] = {}
    seen: list[Any] = []
    while True:
        out = ws.recv()
        if isinstance(out, str):
            message = json.loads(out)
            seen.append(message["type"])
            if message["type"] == "executing":
                data = message["data"]
                if data["node"] is None and data["prompt_id"] == prompt_id:
                    break  # Execution is done
        else:
            seen.append(bytes(out[:8]))
            continue  # previews are binary data

    history = get_history(server_address, prompt_id)[prompt_id]
    for node_id in history["outputs"]:
        node_output = history["outputs"][node_id]
        if "images" in node_output:
            images_output = []
            for image in node_output["images"]:
                image_data = get_image(
                    server_address, image["filename"], image["subfolder"], image["type"]
                )
                images_output.append(image_data)
            output_images[node_id] = images_output
    return output_images, seen


# -- the tests -----------------------------------------------------------------------------


def test_the_websocket_example_gets_its_image(server: str) -> None:
    client_id = str(uuid.uuid4())
    ws = websocket.WebSocket()
    ws.connect(f"ws://{server}/ws?clientId={client_id}")
    ws.settimeout(10)
    try:
        images, seen = get_images(server, client_id, ws, EXAMPLE_PROMPT)
    finally:
        ws.close()
    assert list(images) == ["9"]
    assert read_png_size(images["9"][0]) == (64, 64)
    assert seen[0] == "status"  # sent on connect, with the sid
    for kind in (
        "execution_start",
        "execution_cached",
        "progress",
        "executed",
        "execution_success",
    ):
        assert kind in seen
    assert b"\0\0\0\1\0\0\0\2" in seen  # a PREVIEW_IMAGE frame (PNG), which the example skips
    assert seen.index("execution_success") < len(seen) - 1  # success comes before node: null


def test_the_first_message_names_the_socket_sid(server: str) -> None:
    ws = websocket.create_connection(f"ws://{server}/ws?clientId=abc123", timeout=5)
    try:
        first = json.loads(ws.recv())
    finally:
        ws.close()
    assert first["type"] == "status"
    assert first["data"]["sid"] == "abc123"


def test_an_invalid_prompt_is_refused_with_node_errors(server: str) -> None:
    broken = {**EXAMPLE_PROMPT, "3": {"class_type": "KSampler", "inputs": {"seed": 1}}}
    with pytest.raises(urllib.error.HTTPError) as caught:
        queue_prompt(server, "x", broken)
    body = json.loads(caught.value.read())
    assert caught.value.code == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = body["node_errors"]["3"]["errors"]
    assert {"type": "required_input_missing", "details": "model"}.items() <= errors[0].items()
