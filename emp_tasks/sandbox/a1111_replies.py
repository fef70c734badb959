"""What the AUTOMATIC1111 emulator answers: request checks, reply bodies, progress. Pure.

Bodies follow the web UI's API (reference/provider-apis.md section 6): errors from its middleware
are `{"error": <exception class>, "detail", "body", "errors": str(exception)}`; FastAPI's body
validation is 422 `{"detail": [{"loc": ["body", field], "msg", "type"}]}`; an unknown route (or
any `/sdapi` route of a server started without `--api`) is FastAPI's 404 `{"detail": "Not
Found"}`. Images are real PNGs (sides capped at `MAX_SIDE` to keep the emulator fast).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from emp_tasks.sandbox.png import PNG_SIGNATURE, make_png

__all__ = [
    "MAX_SIDE",
    "MODEL",
    "SAMPLERS",
    "Generation",
    "RequestProblem",
    "check_request",
    "generation_reply",
    "http_error",
    "not_found",
    "oom_error",
    "options",
    "progress_reply",
    "sd_models",
]

MODEL = "v1-5-pruned-emaonly"
MODEL_HASH = "6ce0161689"
SAMPLERS = ("Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DDIM", "UniPC")
MAX_SIDE = 512
_INTS = ("steps", "width", "height", "seed", "batch_size", "n_iter")
_NUMBERS = ("cfg_scale", "denoising_strength")
_STRINGS = ("prompt", "negative_prompt", "sampler_name")


class RequestProblem(Exception):
    """A request the web UI refuses: the status and body it answers with."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status, self.body = status, body


@dataclass(frozen=True)
class Generation:
    """One checked txt2img / img2img request."""

    endpoint: str
    body: dict[str, Any]
    prompt: str
    steps: int
    width: int
    height: int
    seed: int
    count: int


def http_error(status: int, detail: str) -> dict[str, Any]:
    """The middleware's body for an HTTPException."""
    return {"error": "HTTPException", "detail": detail, "body": "", "errors": f"{status}: {detail}"}


def oom_error() -> dict[str, Any]:
    """The body of a CUDA out-of-memory failure (HTTP 500)."""
    text = (
        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity; "
        "5.12 GiB already allocated; 1.10 GiB free)"
    )
    return {"error": "OutOfMemoryError", "detail": "", "body": "", "errors": text}


def not_found() -> dict[str, Any]:
    """FastAPI's own 404 (an unknown route, or any /sdapi route without --api)."""
    return {"detail": "Not Found"}


def invalid(field: str, msg: str, kind: str) -> RequestProblem:
    """A 422 naming one body field, as FastAPI reports it."""
    return RequestProblem(422, {"detail": [{"loc": ["body", field], "msg": msg, "type": kind}]})


def _check_types(body: dict[str, Any]) -> None:
    for name in _INTS:
        if name in body and (type(body[name]) is not int):
            raise invalid(name, "value is not a valid integer", "type_error.integer")
    for name in _NUMBERS:
        if name in body and type(body[name]) not in (int, float):
            raise invalid(name, "value is not a valid float", "type_error.float")
    for name in _STRINGS:
        if name in body and body[name] is not None and not isinstance(body[name], str):
            raise invalid(name, "str type expected", "type_error.str")


def _check_images(images: Any) -> None:
    if images is None:
        raise RequestProblem(404, http_error(404, "Init image not found"))
    if not isinstance(images, list) or not images:
        raise invalid("init_images", "value is not a valid list", "type_error.list")
    for image in images:
        text = image.partition(",")[2] if str(image).startswith("data:") else str(image)
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not (data.startswith(PNG_SIGNATURE) or data.startswith(b"\xff\xd8\xff")):
            raise RequestProblem(500, http_error(500, "Invalid encoded image"))


def check_request(endpoint: str, body: Any) -> Generation:
    """The generation a request asks for; RequestProblem when the web UI would refuse it."""
    if not isinstance(body, dict):
        raise RequestProblem(
            422, {"detail": [{"loc": ["body"], "msg": "field required", "type": "missing"}]}
        )
    _check_types(body)
    sampler = body.get("sampler_name") or body.get("sampler_index") or "Euler a"
    if sampler not in SAMPLERS:
        raise RequestProblem(404, http_error(404, "Sampler not found"))
    if endpoint == "img2img":
        _check_images(body.get("init_images"))
    prompt = str(body.get("prompt") or "")
    seed = int(body.get("seed", -1))
    if seed == -1:  # "random": derived from the prompt, so replies stay reproducible
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    count = max(1, int(body.get("batch_size", 1))) * max(1, int(body.get("n_iter", 1)))
    return Generation(
        endpoint,
        body,
        prompt,
        max(1, int(body.get("steps", 20))),
        int(body.get("width", 512)),
        int(body.get("height", 512)),
        seed,
        min(count, 8),
    )


def generation_reply(run: Generation) -> dict[str, Any]:
    """The 200 body: base64 PNGs (no data: prefix), the request echoed, `info` as a JSON string."""
    seeds = [run.seed + index for index in range(run.count)]
    side_w, side_h = min(run.width, MAX_SIDE), min(run.height, MAX_SIDE)
    images = [
        base64.b64encode(make_png(f"{run.prompt}|{seed}", side_w, side_h)).decode()
        for seed in seeds
    ]
    sampler = run.body.get("sampler_name") or "Euler a"
    infotext = (
        f"{run.prompt}\nSteps: {run.steps}, Sampler: {sampler}, Seed: {run.seed}, "
        f"Size: {run.width}x{run.height}, Model hash: {MODEL_HASH}, Model: {MODEL}"
    )
    info = {
        "prompt": run.prompt,
        "all_prompts": [run.prompt] * run.count,
        "negative_prompt": run.body.get("negative_prompt") or "",
        "seed": run.seed,
        "all_seeds": seeds,
        "subseed": run.seed + 1,
        "width": run.width,
        "height": run.height,
        "sampler_name": sampler,
        "cfg_scale": run.body.get("cfg_scale", 7.0),
        "steps": run.steps,
        "batch_size": run.body.get("batch_size", 1),
        "sd_model_name": MODEL,
        "sd_model_hash": MODEL_HASH,
        "infotexts": [infotext] * run.count,
        "job_timestamp": "20250101120000",
    }
    parameters = dict(run.body)
    if run.endpoint == "img2img":
        parameters["init_images"] = None  # the web UI drops them unless include_init_images
    return {"images": images, "parameters": parameters, "info": json.dumps(info)}


def progress_reply(run: Generation | None, step: int, eta: float) -> dict[str, Any]:
    """`/sdapi/v1/progress` for the running generation (idle: progress 0, job_count 0)."""
    steps = run.steps if run else 0
    fraction = min(1.0, 0.01 + step / steps) if run else 0.0
    state = {
        "skipped": False,
        "interrupted": False,
        "stopping_generation": False,
        "job": f"scripts_{run.endpoint}" if run else "",
        "job_count": 1 if run else 0,
        "job_timestamp": "20250101120000",
        "job_no": 0,
        "sampling_step": step,
        "sampling_steps": steps,
    }
    return {
        "progress": round(fraction, 4),
        "eta_relative": round(eta, 3) if run else 0.0,
        "state": state,
        "current_image": None,
        "textinfo": None,
    }


def options() -> dict[str, Any]:
    """A few of `/sdapi/v1/options`'s keys."""
    return {
        "sd_model_checkpoint": f"{MODEL}.safetensors [{MODEL_HASH}]",
        "samples_format": "png",
        "CLIP_stop_at_last_layers": 1,
        "sd_vae": "Automatic",
    }


def sd_models() -> list[dict[str, Any]]:
    """`/sdapi/v1/sd-models`."""
    return [
        {
            "title": f"{MODEL}.safetensors [{MODEL_HASH}]",
            "model_name": MODEL,
            "hash": MODEL_HASH,
            "sha256": None,
            "filename": f"/models/Stable-diffusion/{MODEL}.safetensors",
            "config": None,
        }
    ]
