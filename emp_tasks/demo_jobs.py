"""The showcase jobs of `emp-tasks demo`: one or more of each service, and how each must end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.gemini import GeminiEmulator

__all__ = ["DemoJob", "demo_jobs"]

# ComfyUI's API-format text-to-image graph (the README's example, saved as "demo").
COMFYUI_WORKFLOW: dict[str, Any] = {
    "4": {
        "class_type": "CheckpointLoaderSimple",
        "inputs": {"ckpt_name": "v1-5-pruned-emaonly.ckpt"},
    },
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "3": {
        "class_type": "KSampler",
        "inputs": {
            "model": ["4", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["5", 0],
            "seed": 5,
            "steps": 8,
            "cfg": 8,
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": 1,
        },
    },
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "demo"}},
}


@dataclass(frozen=True)
class DemoJob:
    """One showcase job: where it goes, the fault its emulator injects, and how it must end."""

    label: str
    service: str
    payload: dict[str, Any]
    expect_status: str
    expect_attempts: int
    fault: Fault | None = None
    match: tuple[str, str] | None = None  # (emulator request attribute, value) the fault matches


def demo_jobs(gemini: GeminiEmulator) -> tuple[DemoJob, ...]:
    """Every showcase job, in the order they are submitted."""
    image_tool = {"type": "image_generation", "size": "256x256"}
    return (
        DemoJob(
            "glif image",
            "glif",
            {"workflow_id": "sandbox-image", "inputs": ["a robot"]},
            "completed",
            1,
        ),
        DemoJob(
            "glif rate-limited, then ok",
            "glif",
            {"workflow_id": "sandbox-text", "inputs": ["robots"]},
            "completed",
            2,
            Fault("rate_limit", retry_after=2),
            ("workflow_id", "sandbox-text"),
        ),
        DemoJob(
            "glif workflow error",
            "glif",
            {"workflow_id": "sandbox-json", "inputs": []},
            "failed",
            1,
            Fault("invalid_workflow"),
            ("workflow_id", "sandbox-json"),
        ),
        DemoJob(
            "glif bad token",
            "glif",
            {"workflow_id": "sandbox-html", "inputs": []},
            "failed",
            1,
            Fault("unauthorized"),
            ("workflow_id", "sandbox-html"),
        ),
        DemoJob("openai_text (streamed)", "openai_text", {"prompt": "Say hello"}, "completed", 1),
        DemoJob(
            "openai_responses image",
            "openai_responses",
            {"input": "draw a fox", "tools": [image_tool]},
            "completed",
            1,
        ),
        DemoJob(
            "openai_image",
            "openai_image",
            {"prompt": "a red fox", "size": "256x256"},
            "completed",
            1,
        ),
        DemoJob(
            "openai out of credits",
            "openai_text",
            {"prompt": "one more"},
            "failed",
            1,
            Fault("insufficient_quota"),
            ("prompt", "one more"),
        ),
        DemoJob("gemini_text", "gemini_text", {"prompt": "Name a colour"}, "completed", 1),
        DemoJob("gemini_image", "gemini_image", {"prompt": "a lighthouse"}, "completed", 1),
        DemoJob(
            "gem-nano-banana (edit)",
            "gem-nano-banana",
            {"prompt": "make it blue", "image_url": gemini.file_url("input.png")},
            "completed",
            1,
        ),
        DemoJob("comfyui workflow", "comfyui", {"workflow": COMFYUI_WORKFLOW}, "completed", 1),
        DemoJob(
            "a1111 out of GPU memory, ok",
            "a1111",
            {"prompt": "a lighthouse at dusk", "steps": 20, "width": 256, "height": 256},
            "completed",
            2,
            Fault("oom"),
            ("prompt", "a lighthouse at dusk"),
        ),
        DemoJob(
            "ollama (streamed)",
            "ollama",
            {"model": "llama3.2", "prompt": "Why is the sky blue?"},
            "completed",
            1,
        ),
        DemoJob(
            "simulation (progress)",
            "simulation",
            {"duration_ms": 2000, "steps": 4, "seed": 1},
            "completed",
            1,
        ),
        DemoJob(
            "simulation retried, then ok",
            "simulation",
            {"duration_ms": 300, "steps": 2, "fail_attempts": 1, "failure_type": "service_error"},
            "completed",
            2,
        ),
        DemoJob(
            "glif logo-maker (named)",
            "logo-maker",
            {"inputs": {"node_6": "a fox logo"}},
            "completed",
            1,
        ),
    )
