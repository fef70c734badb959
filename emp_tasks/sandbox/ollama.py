"""Offline emulator of the Ollama API (reference/provider-apis.md section 4).

Routes: ``POST /api/generate`` and ``/api/chat`` (streamed NDJSON by default, chunked, one word
per line, then a ``"done": true`` line with the stats in nanoseconds; ``"stream": false`` gives
one JSON object), ``GET /api/tags``, ``/api/ps``, ``/api/version``, ``POST /api/show``, and
``GET /`` ("Ollama is running"). No auth. The reply is ``Sandbox reply to: <prompt>`` (the last
user message for chat), wrapped as a JSON object when ``format`` is given. Errors are ``{"error":
"..."}``: 400 ``model is required``, 404 ``model 'x' not found`` for a model not in ``MODELS``.

Faults, queued with ``match`` on ``endpoint`` (generate, chat, tags, ...), ``model`` or
``prompt``, or sent as ``X-Sandbox-Fault``: ``server_error`` (500), ``oom`` (500, not enough
memory for the model), ``rate_limit`` (429, ``Retry-After`` from ``retry_after``, default 1),
``bad_gateway`` (502), ``model_not_found`` (404), ``bad_request`` (400); mid-stream, under HTTP
200: ``mid_stream_error`` (two lines, then ``{"error": ...}``), ``malformed`` (two lines, then
one that is not JSON), ``stream_cut`` (two lines, then a clean end without ``done``), ``reset``
(two lines, then the socket is dropped); and ``slow``, ``non_json``, ``empty_error``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.ollama_replies import (
    VERSION,
    chunks,
    known_model,
    prompt_of,
    show_reply,
    tags_reply,
)
from emp_tasks.sandbox.server import EmulatorHandler, EmulatorServer

__all__ = ["OLLAMA_FAULT_KINDS", "OllamaEmulator"]

_ERRORS: dict[str, tuple[int, str]] = {
    "server_error": (500, "llama runner process has terminated: exit status 2"),
    "oom": (500, "model requires more system memory (9.6 GiB) than is available (4.1 GiB)"),
    "rate_limit": (429, "too many requests, please try again later"),
    "bad_gateway": (502, "upstream model server unreachable"),
    "bad_request": (400, "invalid options: unknown key"),
}
_MID_STREAM = frozenset({"mid_stream_error", "malformed", "stream_cut", "reset"})
_TRANSPORT = frozenset({"slow", "non_json", "empty_error"})
OLLAMA_FAULT_KINDS = frozenset(_ERRORS) | {"model_not_found"} | _MID_STREAM | _TRANSPORT
LINE_PAUSE = 0.01  # seconds between NDJSON lines, so a client really reads them one by one
_GETS = {"/api/tags": "tags", "/api/ps": "ps", "/api/version": "version", "/": "root"}


class OllamaEmulator(EmulatorServer):
    """The Ollama API (generate, chat, tags, version) on loopback, with fault injection."""

    name = "ollama"
    fault_kinds = OLLAMA_FAULT_KINDS

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = ("sandbox-token",),
        latency: float = 0.0,
        *,
        line_pause: float = LINE_PAUSE,
    ) -> None:
        super().__init__(host, port, tokens, latency)
        self.line_pause = line_pause

    def handle_provider(self, h: EmulatorHandler) -> None:
        path = h.path_only.rstrip("/") or "/"
        if h.command == "GET" and path in _GETS:
            self._get(h, _GETS[path])
        elif h.command == "POST" and path in ("/api/generate", "/api/chat", "/api/show"):
            self._post(h, path.rsplit("/", 1)[1])
        else:
            h.send_text(404, "404 page not found")

    def _get(self, h: EmulatorHandler, endpoint: str) -> None:
        h.extra["endpoint"] = endpoint
        fault = self.take_fault(h, {"endpoint": endpoint})
        if fault is not None and self._answer_fault(h, fault, None):
            return
        if endpoint == "root":
            h.send_text(200, "Ollama is running")
        elif endpoint == "version":
            h.send_json(200, {"version": VERSION})
        elif endpoint == "tags":
            h.send_json(200, tags_reply())
        else:
            h.send_json(200, {"models": []})

    def _post(self, h: EmulatorHandler, endpoint: str) -> None:
        body = h.body_json if h.json_ok and isinstance(h.body_json, dict) else None
        model = body.get("model") if body else None
        prompt = prompt_of(endpoint, body or {})
        h.extra.update(endpoint=endpoint, model=model)
        fault = self.take_fault(h, {"endpoint": endpoint, "model": model, "prompt": prompt})
        if (
            fault is not None
            and fault.kind not in _MID_STREAM
            and self._answer_fault(h, fault, model)
        ):
            return
        if body is None:
            h.send_json(400, {"error": "invalid character 'x' looking for beginning of value"})
        elif not isinstance(model, str) or not model:
            h.send_json(400, {"error": "model is required"})
        elif known_model(model) is None:
            h.send_json(404, {"error": f"model '{model}' not found"})
        elif endpoint == "show":
            h.send_json(200, show_reply(str(known_model(model))))
        elif body.get("stream", True) is False:
            lines = chunks(endpoint, model, body)
            h.send_json(200, _collapse(endpoint, lines))
        else:
            self._stream(h, chunks(endpoint, model, body), fault)

    def _stream(self, h: EmulatorHandler, lines: list[dict[str, Any]], fault: Fault | None) -> None:
        kind = fault.kind if fault is not None else None
        raw = [json.dumps(line).encode() + b"\n" for line in lines]
        if kind is not None:
            raw = raw[:2]
            if kind == "mid_stream_error":
                message = fault.message if fault and fault.message else "unexpected EOF"
                error = f"an error was encountered while running the model: {message}"
                raw.append(json.dumps({"error": error}).encode() + b"\n")
            elif kind == "malformed":
                raw.append(b'{"model": "oops", "response": \n')
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for index, data in enumerate(raw):
            if index:
                time.sleep(self.line_pause)
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()
        if kind == "reset":
            h.reset_connection()
            return
        h.wfile.write(b"0\r\n\r\n")

    def _answer_fault(self, h: EmulatorHandler, fault: Fault, model: Any) -> bool:
        """Answer with `fault` when it replaces the reply; False to carry on (`slow`)."""
        if fault.kind in _TRANSPORT:
            return self.apply_transport_fault(h, fault)
        if fault.kind in _MID_STREAM:
            h.extra["fault_ignored"] = fault.kind  # not a generate or chat call
            return False
        if fault.delay:
            time.sleep(fault.delay)
        if fault.kind == "model_not_found":
            status, message = 404, f"model '{model or 'unknown'}' not found"
        else:
            status, message = _ERRORS[fault.kind]
        retry = "1" if fault.kind == "rate_limit" else None
        body = {"error": fault.message or message}
        self.send_fault(h, fault, fault.status or status, body, None, retry_after=retry)
        return True


def _collapse(endpoint: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The one object `"stream": false` answers: the final line with the whole text in it."""
    final = dict(lines[-1])
    text = "".join(
        str(line.get("response") or (line.get("message") or {}).get("content") or "")
        for line in lines
    )
    if endpoint == "chat":
        final["message"] = {"role": "assistant", "content": text}
    else:
        final["response"] = text
    return final
