"""The Glif emulator's outputs: real PNGs and media files, deterministic in the inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from emp_tasks.sandbox.glif import CATALOG, GlifEmulator, Workflow
from emp_tasks.sandbox.png import read_png_size
from tests.sandbox.glif_emulator.support import decode_png, run


@pytest.mark.parametrize("wf_id", ["sandbox-image", "clgh1vxtu0011mo081dplq3xs"])
def test_image_output_is_a_real_png_served_by_the_emulator(
    glif: GlifEmulator, http: requests.Session, wf_id: str
) -> None:
    data = run(http, glif, wf_id, json={"inputs": ["a robot"]}).json()
    full, wf = data["outputFull"], CATALOG[wf_id]
    assert full["type"] == "IMAGE"
    assert full["value"] == data["output"]
    assert (full["width"], full["height"]) == (wf.width, wf.height)
    assert data["output"].startswith(f"{glif.url}/_files/")
    assert data["output"].endswith(".png")
    image = requests.get(data["output"], timeout=5)
    assert image.headers["Content-Type"] == "image/png"
    assert int(image.headers["Content-Length"]) == len(image.content)
    width, height, raw = decode_png(image.content)
    assert (width, height) == read_png_size(image.content) == (wf.width, wf.height)
    assert len(raw) == height * (1 + 3 * width)


def test_image_alias_uses_the_documented_block_name(
    glif: GlifEmulator, http: requests.Session
) -> None:
    data = http.post(
        glif.url,
        json={"id": "clgh1vxtu0011mo081dplq3xs", "inputs": ["a friendly oval robot"]},
        timeout=5,
    ).json()
    assert data["inputs"] == {"node_6": "a friendly oval robot"}


def test_outputs_are_deterministic_in_the_inputs(
    glif: GlifEmulator, http: requests.Session
) -> None:
    first = run(http, glif, "sandbox-image", json={"inputs": ["same"]}).json()["output"]
    again = run(http, glif, "sandbox-image", json={"inputs": ["same"]}).json()["output"]
    other = run(http, glif, "sandbox-image", json={"inputs": ["different"]}).json()["output"]
    assert first == again != other
    assert requests.get(first, timeout=5).content != requests.get(other, timeout=5).content


@pytest.mark.parametrize(
    ("wf_id", "content_type", "magic"),
    [
        ("sandbox-audio", "audio/mpeg", b"ID3"),
        ("sandbox-video", "video/mp4", b"\x00\x00\x00\x18ftypmp42"),
    ],
)
def test_media_outputs_are_served_with_type_and_magic(
    glif: GlifEmulator, http: requests.Session, wf_id: str, content_type: str, magic: bytes
) -> None:
    data = run(http, glif, wf_id).json()
    assert data["outputFull"]["type"] == CATALOG[wf_id].output_type
    media = requests.get(data["output"], timeout=5)
    assert media.headers["Content-Type"] == content_type
    assert media.content.startswith(magic)
    assert len(media.content) > 1000


@pytest.mark.parametrize(
    ("wf_id", "check"),
    [
        ("sandbox-text", lambda out: "hello" in out),
        ("sandbox-json", lambda out: json.loads(out)["items"] == ["hello #1", "hello #2"]),
        ("sandbox-html", lambda out: out.startswith("<html>") and "<h1>hello</h1>" in out),
    ],
)
def test_text_like_outputs_are_strings_derived_from_inputs(
    glif: GlifEmulator, http: requests.Session, wf_id: str, check: Any
) -> None:
    inputs = {"prompt": "hello", "topic": "hello", "count": "2", "title": "hello"}
    data = run(http, glif, wf_id, json={"inputs": inputs}).json()
    assert isinstance(data["output"], str)
    assert check(data["output"])
    assert data["outputFull"] == {"type": CATALOG[wf_id].output_type, "value": data["output"]}


def test_catalog_covers_every_output_type() -> None:
    types = {wf.output_type for wf in CATALOG.values()}
    assert types == {"IMAGE", "TEXT", "JSON", "HTML", "AUDIO", "VIDEO"}
    assert all(isinstance(wf, Workflow) and wf.inputs for wf in CATALOG.values())
