"""What the Ollama emulator answers: its models, and the NDJSON lines of a reply. Pure.

A reply is ``Sandbox reply to: <prompt>`` (for chat, the last user message), one word per line;
with ``format`` it is a JSON object ``{"reply": ...}`` instead, as a model told to answer in
JSON would. Durations are nanoseconds, derived from the word counts so replies are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = [
    "CREATED_AT",
    "MODELS",
    "VERSION",
    "chunks",
    "known_model",
    "prompt_of",
    "show_reply",
    "tags_reply",
]

VERSION = "0.6.2"
CREATED_AT = "2025-01-01T00:00:00.000000Z"
MODELS: dict[str, dict[str, Any]] = {
    "llama3.2:latest": {"family": "llama", "parameter_size": "3.2B", "size": 2019393189},
    "qwen2.5:0.5b": {"family": "qwen2", "parameter_size": "494.03M", "size": 397821319},
}
_WORD = re.compile(r"\S+\s*")


def known_model(name: str) -> str | None:
    """The installed model's full name (`llama3.2` means `llama3.2:latest`), or None."""
    full = name if ":" in name else f"{name}:latest"
    return full if full in MODELS else None


def prompt_of(endpoint: str, body: dict[str, Any]) -> str | None:
    """The text a request asks about: generate's prompt, or chat's last user message."""
    if endpoint != "chat":
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else None
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return None


def _answer(endpoint: str, body: dict[str, Any]) -> str:
    text = f"Sandbox reply to: {prompt_of(endpoint, body) or ''}"
    return json.dumps({"reply": text}) if body.get("format") else text


def _final(endpoint: str, model: str, body: dict[str, Any], count: int) -> dict[str, Any]:
    prompt_tokens = len(_WORD.findall(prompt_of(endpoint, body) or "")) + 4
    eval_ns, prompt_ns, load_ns = count * 20_000_000, prompt_tokens * 2_500_000, 5_025_959
    final: dict[str, Any] = {
        "model": model,
        "created_at": CREATED_AT,
        "done": True,
        "done_reason": "stop",
        "total_duration": load_ns + prompt_ns + eval_ns + 1_000_000,
        "load_duration": load_ns,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": count,
        "eval_duration": eval_ns,
    }
    if endpoint == "chat":
        final["message"] = {"role": "assistant", "content": ""}
    else:
        final["response"] = ""
        final["context"] = list(range(1, prompt_tokens + count + 1))
    return final


def chunks(endpoint: str, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every NDJSON line of the reply, the final `done` line (with its stats) last."""
    words = _WORD.findall(_answer(endpoint, body))
    lines: list[dict[str, Any]] = []
    for word in words:
        line: dict[str, Any] = {"model": model, "created_at": CREATED_AT, "done": False}
        if endpoint == "chat":
            line["message"] = {"role": "assistant", "content": word}
        else:
            line["response"] = word
        lines.append(line)
    return [*lines, _final(endpoint, model, body, len(words))]


def _details(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": info["family"],
        "families": [info["family"]],
        "parameter_size": info["parameter_size"],
        "quantization_level": "Q4_K_M",
    }


def tags_reply() -> dict[str, Any]:
    """`GET /api/tags`: the installed models."""
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "modified_at": CREATED_AT,
                "size": info["size"],
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": _details(info),
            }
            for name, info in MODELS.items()
        ]
    }


def show_reply(model: str) -> dict[str, Any]:
    """`POST /api/show` for an installed model."""
    return {
        "modelfile": f"FROM {model}\n",
        "parameters": 'stop "<|eot_id|>"',
        "template": "{{ .Prompt }}",
        "details": _details(MODELS[model]),
        "model_info": {"general.architecture": MODELS[model]["family"]},
        "capabilities": ["completion"],
        "modified_at": CREATED_AT,
    }
