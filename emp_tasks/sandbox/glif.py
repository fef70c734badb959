"""Offline emulator of the Glif Simple API (reference/provider-apis.md section 1).

Wire behaviour, as the real service: ``POST /`` with ``{"id", "inputs", "visibility"?}`` or
``POST /<id>`` with ``{"inputs"}``; ``Authorization: Bearer <token>``; body parsed with or
without ``Content-Type``; legacy singular ``"input"`` accepted; ``?strict=1`` rejects missing
inputs instead of filling defaults. Workflow outcomes are always HTTP 200 and failures carry
``{"error": "..."}``; only a bad token (401) and a malformed body (400) are non-200.

Catalog (``CATALOG``: id -> output type, input blocks with defaults):

* ``sandbox-image``  IMAGE (256x256 PNG)  prompt="a friendly oval robot", style="watercolor"
* ``sandbox-text``   TEXT                 prompt="tell me about robots"
* ``sandbox-json``   JSON (a JSON string) topic="robots", count="3"
* ``sandbox-html``   HTML                 title="Hello from the sandbox"
* ``sandbox-audio``  AUDIO (audio/mpeg)   text="hello from the sandbox", voice="alloy"
* ``sandbox-video``  VIDEO (video/mp4)    prompt="a spinning cube"
* ``clgh1vxtu0011mo081dplq3xs``  IMAGE (512x512) node_6="a friendly oval robot" - the id and
  block name of the documented example, for realistic cuid-shaped ids.

Media outputs are generated deterministically from (id, resolved inputs) and served by the
emulator itself at ``<url>/_files/<name>``.

Fault kinds (``GLIF_FAULT_KINDS``), queued with ``match={"workflow_id": id}`` or sent per
request as ``X-Sandbox-Fault: kind;param=value``:

* HTTP-level: ``rate_limit`` (429 + Retry-After, default "1"), ``server_error`` (500 HTML),
  ``empty_error`` (503, empty body), ``unauthorized`` (401), ``forbidden`` (403),
  ``non_json`` (200 text/html), ``reset`` (TCP RST, no response), ``slow`` (sleep ``delay``);
* 200 + ``{"error"}``: ``workflow_error``, ``invalid_workflow``, ``insufficient_credits``,
  ``rate_limit_text``, ``auth_text``, ``timeout_text``;
* odd-but-successful shapes: ``missing_output_full``, ``price_number``, ``lowercase_type``.
"""

from __future__ import annotations

import hashlib
import html
import json
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.png import make_png
from emp_tasks.sandbox.server import EmulatorHandler, EmulatorServer

__all__ = ["CATALOG", "GLIF_FAULT_KINDS", "GlifEmulator", "Workflow", "resolve_inputs"]

UNAUTHORIZED = "Unauthorized: invalid or missing API token"
NON_STRING_INPUT = "Invalid input: only string values are allowed"
NOT_ENOUGH_INPUTS = "Not enough inputs provided (strict mode)"


@dataclass(frozen=True)
class Workflow:
    """A sandbox glif: its input blocks (name, default), output type and price."""

    id: str
    output_type: str
    inputs: tuple[tuple[str, str], ...]
    price: str
    block_type: str
    width: int = 256
    height: int = 256


CATALOG: dict[str, Workflow] = {
    wf.id: wf
    for wf in (
        Workflow(
            "sandbox-image",
            "IMAGE",
            (("prompt", "a friendly oval robot"), ("style", "watercolor")),
            "2.1000875",
            "ImageGenerationBlock",
        ),
        Workflow(
            "sandbox-text",
            "TEXT",
            (("prompt", "tell me about robots"),),
            "0.0325000",
            "TextGenerationBlock",
        ),
        Workflow(
            "sandbox-json",
            "JSON",
            (("topic", "robots"), ("count", "3")),
            "0.0410000",
            "JSONExtractorBlock",
        ),
        Workflow(
            "sandbox-html", "HTML", (("title", "Hello from the sandbox"),), "0.0100000", "HtmlBlock"
        ),
        Workflow(
            "sandbox-audio",
            "AUDIO",
            (("text", "hello from the sandbox"), ("voice", "alloy")),
            "0.5000000",
            "AudioGenerationBlock",
        ),
        Workflow(
            "sandbox-video",
            "VIDEO",
            (("prompt", "a spinning cube"),),
            "12.0000000",
            "VideoGenerationBlock",
        ),
        Workflow(
            "clgh1vxtu0011mo081dplq3xs",
            "IMAGE",
            (("node_6", "a friendly oval robot"),),
            "2.1000875",
            "ImageGenerationBlock",
            512,
            512,
        ),
    )
}

# Fault kinds answered with a non-200 JSON error: default status and message.
_STATUS_ERRORS: dict[str, tuple[int, str]] = {
    "rate_limit": (429, "Too many requests"),
    "unauthorized": (401, UNAUTHORIZED),
    "forbidden": (403, "Forbidden: this token may not run this glif"),
}
# Fault kinds answered the Glif way: HTTP 200 + {"error": text}.
_TEXT_ERRORS: dict[str, str] = {
    "workflow_error": "Workflow execution failed",
    "invalid_workflow": "Invalid workflow ID: {id}",
    "insufficient_credits": "Insufficient credits: this run needs 2.1 credits, you have 0.3",
    "rate_limit_text": "Rate limit exceeded, try again later",
    "auth_text": "Authentication failed: invalid token",
    "timeout_text": "Workflow run timed out after 300s",
}
_SHAPE_TWEAKS = frozenset({"missing_output_full", "price_number", "lowercase_type"})
GLIF_FAULT_KINDS = frozenset(
    {"slow", "reset", "server_error", "empty_error", "non_json"}
    | _STATUS_ERRORS.keys()
    | _TEXT_ERRORS.keys()
    | _SHAPE_TWEAKS
)

_MEDIA: dict[str, tuple[str, str]] = {
    "IMAGE": ("png", "image/png"),
    "AUDIO": ("mp3", "audio/mpeg"),
    "VIDEO": ("mp4", "video/mp4"),
}
# A complete 24-byte ISO-BMFF ftyp box, so content sniffers call it MP4.
_MP4_FTYP = b"\x00\x00\x00\x18ftypmp42" + b"\x00\x00\x00\x00" + b"mp42isom"
_ID3_HEADER = b"ID3\x04\x00\x00\x00\x00\x00\x00"


def resolve_inputs(wf: Workflow, raw: Any, strict: bool) -> dict[str, str]:
    """Map positional or named string inputs onto ``wf``'s blocks; ValueError on bad input."""
    names = [name for name, _ in wf.inputs]
    if raw is None:
        given: dict[str, str] = {}
    elif isinstance(raw, list):
        if not all(isinstance(v, str) for v in raw):
            raise ValueError(NON_STRING_INPUT)
        given = dict(zip(names, raw, strict=False))  # extra positional values are ignored
    elif isinstance(raw, dict):
        if not all(isinstance(v, str) for v in raw.values()):
            raise ValueError(NON_STRING_INPUT)
        given = {name: raw[name] for name in names if name in raw}
    else:
        raise ValueError("Invalid input: inputs must be an array or an object")
    if strict and len(given) < len(names):
        raise ValueError(NOT_ENOUGH_INPUTS)
    return {name: given.get(name, default) for name, default in wf.inputs}


def _media_bytes(wf: Workflow, seed: str) -> bytes:
    if wf.output_type == "IMAGE":
        return make_png(seed, wf.width, wf.height)
    filler = hashlib.sha256(seed.encode("utf-8")).digest() * 64  # 2 KiB, seed-specific
    if wf.output_type == "AUDIO":
        return _ID3_HEADER + filler
    return _MP4_FTYP + struct.pack(">I4s", 8 + len(filler), b"mdat") + filler


def _text_output(wf: Workflow, inputs: dict[str, str], digest: str) -> str:
    values = list(inputs.values())
    if wf.output_type == "JSON":
        count = int(inputs["count"]) if inputs.get("count", "").isdigit() else 3
        items = [f"{values[0]} #{i + 1}" for i in range(min(count, 20))]
        return json.dumps({"topic": values[0], "items": items, "digest": digest[:16]})
    if wf.output_type == "HTML":
        title = html.escape(values[0])
        return f"<html><body><h1>{title}</h1><p>run {digest[:12]}</p></body></html>"
    return f"Sandbox answer to {' | '.join(values)!r} (run {digest[:12]})"


def _apply_shape_tweak(result: dict[str, Any], kind: str | None) -> dict[str, Any]:
    """Successful-but-odd response shapes that real clients have to tolerate."""
    if kind == "missing_output_full":
        del result["outputFull"]
    elif kind == "price_number":
        result["price"] = float(result["price"])
    elif kind == "lowercase_type":
        result["outputFull"]["type"] = result["outputFull"]["type"].lower()
    return result


class GlifEmulator(EmulatorServer):
    """The Glif Simple API on loopback, with a fixed catalog and fault injection."""

    name = "glif"
    fault_kinds = GLIF_FAULT_KINDS

    def handle_provider(self, h: EmulatorHandler) -> None:
        parts = [unquote(p) for p in h.path_only.strip("/").split("/") if p]
        if len(parts) > 1:
            h.send_json(404, {"error": "Not found"})
        elif h.command != "POST":
            h.send_json(405, {"error": "Method not allowed"}, {"Allow": "POST"})
        elif not h.auth_valid:
            h.send_json(401, {"error": UNAUTHORIZED})
        elif not h.json_ok or not isinstance(h.body_json, dict | None):
            h.send_json(400, {"error": "Invalid JSON body"})
        else:
            body: dict[str, Any] = h.body_json or {}
            self._run(h, body, parts[0] if parts else body.get("id"))

    def _run(self, h: EmulatorHandler, body: dict[str, Any], wf_id: Any) -> None:
        h.extra["workflow_id"] = wf_id
        fault = self.take_fault(h, {"workflow_id": wf_id})
        if fault is not None and self._answer_fault(h, fault, wf_id):
            return
        strict = h.query.get("strict", "").lower() in ("1", "true")
        outcome = self._outcome(body, wf_id, strict)
        if "error" in outcome:
            h.extra["error"] = outcome["error"]
        else:
            outcome = _apply_shape_tweak(outcome, fault.kind if fault else None)
        h.send_json(200, outcome)

    def _answer_fault(self, h: EmulatorHandler, fault: Fault, wf_id: Any) -> bool:
        """Answer with ``fault`` if it replaces the normal response; False to carry on."""
        if self.apply_transport_fault(h, fault):
            return True
        if fault.kind in _STATUS_ERRORS:
            status, message = _STATUS_ERRORS[fault.kind]
            retry = "1" if fault.kind == "rate_limit" else None
            body = {"error": fault.message or message}
            self.send_fault(h, fault, fault.status or status, body, None, retry)
            return True
        if fault.kind in _TEXT_ERRORS:
            text = fault.message or _TEXT_ERRORS[fault.kind].format(id=wf_id)
            h.extra["error"] = text
            self.send_fault(h, fault, fault.status or 200, {"error": text}, None)
            return True
        return False

    def _outcome(self, body: dict[str, Any], wf_id: Any, strict: bool) -> dict[str, Any]:
        if not isinstance(wf_id, str) or not wf_id:
            return {"error": "Missing glif id"}
        wf = CATALOG.get(wf_id)
        if wf is None:
            return {"error": f"Glif not found: {wf_id}"}
        if body.get("visibility", "PRIVATE") not in ("PUBLIC", "PRIVATE"):
            return {"error": "Invalid visibility: must be PUBLIC or PRIVATE"}
        raw = body["inputs"] if "inputs" in body else body.get("input")
        try:
            inputs = resolve_inputs(wf, raw, strict)
        except ValueError as exc:
            return {"error": str(exc)}
        return self.run_workflow(wf, inputs)

    def run_workflow(self, wf: Workflow, inputs: dict[str, str]) -> dict[str, Any]:
        """The success body for ``wf`` run on resolved ``inputs`` (deterministic)."""
        seed = f"{wf.id}|{json.dumps(inputs, sort_keys=True)}"
        digest = hashlib.sha256(seed.encode("utf-8")).hexdigest()
        if wf.output_type in _MEDIA:
            ext, content_type = _MEDIA[wf.output_type]
            name = f"{wf.id}-{digest[:16]}.{ext}"
            if not self.has_file(name):  # same inputs, same file: generate once
                self.add_file(name, _media_bytes(wf, seed), content_type)
            output = self.file_url(name)
        else:
            output = _text_output(wf, inputs, digest)
        full: dict[str, Any] = {"type": wf.output_type, "value": output}
        if wf.output_type == "IMAGE":
            full.update(width=wf.width, height=wf.height)
        nodes = [{"name": k, "type": "TextInputBlock", "output": v} for k, v in inputs.items()]
        nodes.append({"name": "output", "type": wf.block_type, "output": output})
        return {
            "id": wf.id,
            "inputs": inputs,
            "output": output,
            "outputFull": full,
            "price": wf.price,
            "nodes": nodes,
        }
