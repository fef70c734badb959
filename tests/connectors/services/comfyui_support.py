"""Shared pieces of the ComfyUI connector tests: the example workflow, a job, frames."""

from __future__ import annotations

import copy
import json
from typing import Any

from connectors.models import JobData

__all__ = ["WORKFLOW", "frame", "job", "workflow"]

# ComfyUI's script_examples workflow (API format).
WORKFLOW: dict[str, Any] = {
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
            "steps": 4,
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
    "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "a red fox"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["4", 1], "text": "blurry"}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "fox", "images": ["8", 0]}},
}


def workflow(**changes: Any) -> dict[str, Any]:
    """A deep copy of WORKFLOW with top-level nodes replaced."""
    return {**copy.deepcopy(WORKFLOW), **changes}


def job(job_id: str = "job-1", **payload: Any) -> JobData:
    return JobData(id=job_id, type="comfyui", payload={"workflow": workflow(), **payload})


def frame(kind: str, **data: Any) -> str:
    return json.dumps({"type": kind, "data": data})
