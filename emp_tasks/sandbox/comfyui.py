"""Offline emulator of a ComfyUI server (reference/provider-apis.md section 5), `/ws` included.

HTTP, on one port, every route also under `/api`: `POST /prompt` (validated as ComfyUI does:
`invalid_prompt`, `prompt_no_outputs`, `prompt_outputs_failed_validation` with `node_errors`;
a client-chosen `prompt_id` is kept), `GET /prompt`, `GET /queue`, `POST /queue` (delete,
clear), `GET /history[/<id>]`, `GET /view`, `POST /interrupt`, `GET /system_stats`. The
WebSocket `GET /ws?clientId=` is upgraded in the handler's own thread (RFC 6455, `wsframes`);
one socket per client id, the newest wins, as in ComfyUI. Runs: `comfyui_run.PromptRunner`.

Faults are taken by `POST /prompt` (match on `filename_prefix`, `client_id`, `prompt_id`) and
`GET /view` (`endpoint: view`), queued or per request (`X-Sandbox-Fault`):

* transport: `slow`, `reset`, `server_error`, `empty_error`, `non_json`;
* refusals (HTTP 400): `validation_error` (a required input missing on the first node),
  `invalid_prompt`, `prompt_no_outputs`;
* during the run (`comfyui_run.RUN_FAULTS`): `oom` (execution_error, torch.OutOfMemoryError),
  `execution_error` (ValueError), `interrupted`, `drop_socket`, `malformed_frame`, `slow_run`.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from emp_tasks.sandbox.comfyui_run import RUN_FAULTS, PromptRun, PromptRunner
from emp_tasks.sandbox.comfyui_validate import validate_prompt
from emp_tasks.sandbox.control import FileStore
from emp_tasks.sandbox.server import EmulatorHandler, EmulatorServer
from emp_tasks.sandbox.wsframes import OP_TEXT, WebSocketPeer, accept_key

__all__ = ["COMFYUI_FAULT_KINDS", "ComfyUIEmulator"]

_REFUSALS = frozenset({"validation_error", "invalid_prompt", "prompt_no_outputs"})
COMFYUI_FAULT_KINDS = frozenset(
    {"slow", "reset", "server_error", "empty_error", "non_json"} | _REFUSALS | RUN_FAULTS
)
SYSTEM_STATS = {
    "system": {
        "os": "posix",
        "ram_total": 34359738368,
        "ram_free": 30000000000,
        "comfyui_version": "0.3.40-sandbox",
        "python_version": "3.11",
        "pytorch_version": "2.5.1",
        "embedded_python": False,
        "argv": ["main.py"],
    },
    "devices": [
        {
            "name": "cuda:0 Sandbox GPU",
            "type": "cuda",
            "index": 0,
            "vram_total": 25769803776,
            "vram_free": 24000000000,
            "torch_vram_total": 0,
            "torch_vram_free": 0,
        }
    ],
}


def _refusal(kind: str, prompt: dict[str, Any]) -> dict[str, Any]:
    node_id = next(iter(prompt), "1")
    if kind == "invalid_prompt":
        err = {
            "type": kind,
            "message": "Cannot execute because node SandboxNode does not exist.",
            "details": f"Node ID '#{node_id}'",
            "extra_info": {},
        }
        return {"error": err, "node_errors": {}}
    if kind == "prompt_no_outputs":
        err = {"type": kind, "message": "Prompt has no outputs", "details": "", "extra_info": {}}
        return {"error": err, "node_errors": {}}
    item = {
        "type": "required_input_missing",
        "message": "Required input is missing",
        "details": "model",
        "extra_info": {"input_name": "model"},
    }
    class_type = (prompt.get(node_id) or {}).get("class_type", "KSampler")
    errors = {node_id: {"errors": [item], "dependent_outputs": [], "class_type": class_type}}
    err = {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    }
    return {"error": err, "node_errors": errors}


class ComfyUIEmulator(EmulatorServer):
    """A ComfyUI server on loopback: prompt queue, history, images, and the `/ws` event socket."""

    name = "comfyui"
    fault_kinds = COMFYUI_FAULT_KINDS

    def __init__(self, *args: Any, step_delay: float = 0.01, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._peers: dict[str, WebSocketPeer] = {}
        self._peers_lock = threading.Lock()
        self._images = FileStore()
        self._numbers = itertools.count(1)
        self.runner = PromptRunner(self._emit, self._drop, self._save_image, step_delay)

    def stop(self) -> None:
        with self._peers_lock:
            peers = list(self._peers.values())
        for peer in peers:
            peer.drop()
        super().stop()

    # -- sockets (used by the runner) ----------------------------------------------------

    def _emit(self, sid: str | None, opcode: int, payload: bytes) -> None:
        with self._peers_lock:
            peers = list(self._peers.values()) if sid is None else [self._peers.get(sid)]
        for peer in peers:
            if peer is not None:
                peer.send(opcode, payload)

    def _drop(self, sid: str) -> None:
        with self._peers_lock:
            peer = self._peers.pop(sid, None)
        if peer is not None:
            peer.drop()

    def _save_image(self, name: str, data: bytes) -> None:
        self._images.put(name, data, "image/png")

    # -- HTTP ----------------------------------------------------------------------------

    def handle_provider(self, h: EmulatorHandler) -> None:
        path = h.path_only.removeprefix("/api") or "/"
        route = (h.command, path if not path.startswith("/history/") else "/history/")
        handlers: dict[tuple[str, str], Callable[[EmulatorHandler], None]] = {
            ("GET", "/ws"): self._websocket,
            ("POST", "/prompt"): self._prompt,
            ("GET", "/prompt"): lambda h: h.send_json(
                200, {"exec_info": {"queue_remaining": self.runner.remaining()}}
            ),
            ("GET", "/queue"): lambda h: h.send_json(200, self.runner.queue_view()),
            ("POST", "/queue"): self._edit_queue,
            ("GET", "/history"): lambda h: h.send_json(200, dict(self.runner.history)),
            ("GET", "/history/"): self._history,
            ("GET", "/view"): self._view,
            ("POST", "/interrupt"): self._interrupt,
            ("GET", "/system_stats"): lambda h: h.send_json(200, SYSTEM_STATS),
        }
        handler = handlers.get(route)
        if handler is None:
            h.send_text(404, "404: Not Found")
        else:
            handler(h)

    def _websocket(self, h: EmulatorHandler) -> None:
        key = h.headers.get("Sec-WebSocket-Key")
        if "websocket" not in (h.headers.get("Upgrade") or "").lower() or not key:
            h.send_text(400, "Expected a WebSocket upgrade")
            return
        sid = h.query.get("clientId") or uuid.uuid4().hex
        h.extra["client_id"] = sid
        h.send_response(101, "Switching Protocols")
        h.send_header("Upgrade", "websocket")
        h.send_header("Connection", "Upgrade")
        h.send_header("Sec-WebSocket-Accept", accept_key(key))
        h.end_headers()
        h.close_connection = True  # after the socket, the connection is not HTTP any more
        peer = WebSocketPeer(h.connection, h.rfile, sid)
        with self._peers_lock:
            self._peers[sid] = peer  # ComfyUI: one socket per client id, the newest wins
        status = {"status": {"exec_info": {"queue_remaining": self.runner.remaining()}}, "sid": sid}
        peer.send(OP_TEXT, json.dumps({"type": "status", "data": status}).encode())
        peer.serve()
        with self._peers_lock:
            if self._peers.get(sid) is peer:
                del self._peers[sid]

    def _prompt(self, h: EmulatorHandler) -> None:
        body: dict[str, Any] = h.body_json if isinstance(h.body_json, dict) else {}
        prompt = body.get("prompt")
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        client_id = body.get("client_id")
        h.extra.update(prompt_id=prompt_id, client_id=client_id)
        fault = self.take_fault(h, _attrs(prompt, prompt_id, client_id))
        if fault is not None and self.apply_transport_fault(h, fault):
            return
        if fault is not None and fault.kind in _REFUSALS:
            refused = _refusal(fault.kind, prompt if isinstance(prompt, dict) else {})
            self.send_fault(h, fault, fault.status or 400, refused, None)
            return
        if not h.json_ok:
            h.send_text(500, "500 Internal Server Error")  # aiohttp's answer to a bad body
            return
        invalid = validate_prompt(prompt)
        if invalid is not None:
            h.extra["error"] = invalid["error"]["type"]
            h.send_json(400, invalid)
            return
        assert isinstance(prompt, dict)
        run = PromptRun(
            prompt_id,
            next(self._numbers),
            prompt,
            client_id,
            fault if fault is not None and fault.kind in RUN_FAULTS else None,
        )
        self.runner.put(run)
        h.send_json(200, {"prompt_id": prompt_id, "number": run.number, "node_errors": {}})

    def _edit_queue(self, h: EmulatorHandler) -> None:
        body: dict[str, Any] = h.body_json if isinstance(h.body_json, dict) else {}
        self.runner.remove({str(i) for i in body.get("delete") or []}, bool(body.get("clear")))
        h.send_empty(200)

    def _history(self, h: EmulatorHandler) -> None:
        prompt_id = h.path_only.rsplit("/", 1)[-1]
        entry = self.runner.history.get(prompt_id)
        h.send_json(200, {prompt_id: entry} if entry is not None else {})

    def _view(self, h: EmulatorHandler) -> None:
        fault = self.take_fault(h, {"endpoint": "view", "filename": h.query.get("filename")})
        if fault is not None and self.apply_transport_fault(h, fault):
            return
        kind, name = h.query.get("type") or "output", h.query.get("filename") or ""
        if kind not in ("output", "input", "temp") or not name or "/" in name or ".." in name:
            h.send_text(400, "400: Bad Request")
            return
        found = self._images.get(f"{kind}/{name}")
        if found is None:
            h.send_text(404, "404: Not Found")
        else:
            h.send_bytes(200, found[0], found[1])

    def _interrupt(self, h: EmulatorHandler) -> None:
        body: dict[str, Any] = h.body_json if isinstance(h.body_json, dict) else {}
        self.runner.interrupt(body.get("prompt_id"))
        h.send_empty(200)


def _attrs(prompt: Any, prompt_id: str, client_id: Any) -> dict[str, Any]:
    prefixes = [
        n.get("inputs", {}).get("filename_prefix")
        for n in (prompt.values() if isinstance(prompt, dict) else [])
        if isinstance(n, dict) and isinstance(n.get("inputs"), dict)
    ]
    prefix = next((p for p in prefixes if p), None)
    return {
        "endpoint": "prompt",
        "filename_prefix": prefix,
        "prompt_id": prompt_id,
        "client_id": client_id,
    }
