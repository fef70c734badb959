"""What the ComfyUI emulator accepts on POST /prompt: a small node catalog, ComfyUI's refusals.

`validate_prompt` answers as ComfyUI's `validate_prompt` does: `no_prompt`, `invalid_prompt`
(a node without `class_type`, or of a class the server lacks), `prompt_no_outputs`, and
`prompt_outputs_failed_validation` with `node_errors` (required inputs missing, an unknown
checkpoint). Pure, no I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHECKPOINTS", "NODE_CLASSES", "OUTPUT_CLASSES", "validate_prompt"]

# class_type -> required inputs (a small slice of ComfyUI's node catalog).
NODE_CLASSES: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPTextEncode": ("text", "clip"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "KSampler": (
        "model",
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "positive",
        "negative",
        "latent_image",
        "denoise",
    ),
    "VAEDecode": ("samples", "vae"),
    "LoadImage": ("image",),
    "SaveImage": ("images", "filename_prefix"),
    "PreviewImage": ("images",),
}
# Output nodes and the folder type of the images they write.
OUTPUT_CLASSES = {"SaveImage": "output", "PreviewImage": "temp"}
CHECKPOINTS = ("v1-5-pruned-emaonly.ckpt", "sd_xl_base_1.0.safetensors")


def _error(kind: str, message: str, details: str = "", node_errors: Any = None) -> dict[str, Any]:
    err = {"type": kind, "message": message, "details": details, "extra_info": {}}
    return {"error": err, "node_errors": node_errors or {}}


def _node_errors(prompt: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node_id, node in prompt.items():
        inputs = node.get("inputs") or {}
        errors = [
            {
                "type": "required_input_missing",
                "message": "Required input is missing",
                "details": name,
                "extra_info": {"input_name": name},
            }
            for name in NODE_CLASSES[node["class_type"]]
            if name not in inputs
        ]
        ckpt = inputs.get("ckpt_name")
        if node["class_type"] == "CheckpointLoaderSimple" and ckpt and ckpt not in CHECKPOINTS:
            errors.append(
                {
                    "type": "value_not_in_list",
                    "message": "Value not in list",
                    "details": f"ckpt_name: '{ckpt}' not in {list(CHECKPOINTS)}",
                    "extra_info": {"input_name": "ckpt_name"},
                }
            )
        if errors:
            found[node_id] = {
                "errors": errors,
                "dependent_outputs": [],
                "class_type": node["class_type"],
            }
    return found


def validate_prompt(prompt: Any) -> dict[str, Any] | None:
    """The 400 body ComfyUI sends for `prompt`, or None when it would be queued."""
    if not isinstance(prompt, dict) or not prompt:
        return _error("no_prompt", "No prompt provided")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return _error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
        if node["class_type"] not in NODE_CLASSES:
            return _error(
                "invalid_prompt",
                f"Cannot execute because node {node['class_type']} does not exist.",
                f"Node ID '#{node_id}'",
            )
    if not any(node["class_type"] in OUTPUT_CLASSES for node in prompt.values()):
        return _error("prompt_no_outputs", "Prompt has no outputs")
    errors = _node_errors(prompt)
    if errors:
        return _error(
            "prompt_outputs_failed_validation",
            "Prompt outputs failed validation",
            node_errors=errors,
        )
    return None
