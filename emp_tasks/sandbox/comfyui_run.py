"""The ComfyUI emulator's prompt queue: validation, one executor thread, events, history.

As ComfyUI's `PromptQueue` and `prompt_worker`: prompts run one at a time in order; each run
sends its events to the socket of its client id (queue `status` to every socket); the history
entry is written *before* the final `executing` with `node: null`, so a client that reads
`/history` on that marker finds it. A run-level fault (`RUN_FAULTS`) taken when the prompt was
queued breaks the run at its sampler, halfway: OOM, another exception, an interrupt, the socket
dropped (the run goes on, as on a real server), a malformed frame, or slower steps.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emp_tasks.sandbox.comfyui_validate import OUTPUT_CLASSES
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.png import make_png
from emp_tasks.sandbox.wsframes import OP_BINARY, OP_TEXT

__all__ = ["RUN_FAULTS", "PromptRun", "PromptRunner"]

RUN_FAULTS = frozenset(
    {"oom", "execution_error", "interrupted", "drop_socket", "malformed_frame", "slow_run"}
)
OOM_MESSAGE = "Allocation on device 0 would exceed allowed memory. (out of memory)"
MALFORMED = b'{"type": "progress", "data": {"value": 3, "max'
# Emits one frame to a client id (None: every socket).
Emit = Callable[[str | None, int, bytes], None]


@dataclass
class PromptRun:
    """One queued prompt: ids, graph, and the fault (if any) its run must suffer."""

    prompt_id: str
    number: int
    prompt: dict[str, Any]
    client_id: str | None
    fault: Fault | None = None
    interrupt: threading.Event = field(default_factory=threading.Event)

    def item(self) -> list[Any]:
        outputs = [k for k, n in self.prompt.items() if n["class_type"] in OUTPUT_CLASSES]
        return [self.number, self.prompt_id, self.prompt, {"client_id": self.client_id}, outputs]


class _Stopped(Exception):
    """The run ended early (error or interrupt): its last message is already recorded."""


class PromptRunner:
    """ComfyUI's queue and executor thread: runs prompts in order, writes their history."""

    def __init__(
        self,
        emit: Emit,
        drop: Callable[[str], None],
        save: Callable[[str, bytes], None],
        step_delay: float = 0.01,
    ) -> None:
        self.emit, self.drop, self.save, self.step_delay = emit, drop, save, step_delay
        self.history: dict[str, dict[str, Any]] = {}
        self.pending: deque[PromptRun] = deque()
        self.running: PromptRun | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._images = 0
        self._thread = threading.Thread(
            target=self._loop, name="sandbox-comfyui-runner", daemon=True
        )
        self._thread.start()

    def put(self, run: PromptRun) -> None:
        with self._cond:
            self.pending.append(run)
            self._cond.notify()
        self._status()

    def queue_view(self) -> dict[str, Any]:
        with self._cond:
            running = [self.running.item()] if self.running else []
            return {"queue_running": running, "queue_pending": [r.item() for r in self.pending]}

    def remaining(self) -> int:
        with self._cond:
            return len(self.pending) + (1 if self.running else 0)

    def remove(self, prompt_ids: set[str], clear: bool = False) -> None:
        """Drop pending prompts (`POST /queue` with `delete`, or every one with `clear`)."""
        with self._cond:
            kept = [] if clear else [r for r in self.pending if r.prompt_id not in prompt_ids]
            self.pending.clear()
            self.pending.extend(kept)

    def interrupt(self, prompt_id: str | None) -> None:
        with self._cond:
            run = self.running
        if run is not None and prompt_id in (None, run.prompt_id):
            run.interrupt.set()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self.pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                self.running = self.pending.popleft()
            self._execute(self.running)
            with self._cond:
                self.running = None
            self._status()

    def _send(self, run: PromptRun, kind: str, data: dict[str, Any]) -> None:
        body = {"type": kind, "data": {**data, "prompt_id": run.prompt_id}}
        if run.client_id is not None:
            self.emit(run.client_id, OP_TEXT, json.dumps(body).encode())

    def _status(self) -> None:
        status = {"status": {"exec_info": {"queue_remaining": self.remaining()}}}
        self.emit(None, OP_TEXT, json.dumps({"type": "status", "data": status}).encode())

    def _execute(self, run: PromptRun) -> None:
        messages: list[list[Any]] = []
        outputs: dict[str, Any] = {}
        stamp = {"timestamp": int(time.time() * 1000)}
        messages.append(["execution_start", {"prompt_id": run.prompt_id, **stamp}])
        self._send(run, "execution_start", stamp)
        self._send(run, "execution_cached", {"nodes": [], **stamp})
        try:
            for node_id, node in run.prompt.items():
                self._node(run, node_id, node, outputs, messages)
            status = "success"
            messages.append(["execution_success", {"prompt_id": run.prompt_id, **stamp}])
            self._send(run, "execution_success", stamp)
        except _Stopped:
            status = "error"
        self.history[run.prompt_id] = {
            "prompt": run.item(),
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {k: {"node_id": k, "display_node": k} for k in outputs},
        }
        self._send(run, "executing", {"node": None})

    def _node(
        self,
        run: PromptRun,
        node_id: str,
        node: dict[str, Any],
        outputs: dict[str, Any],
        messages: list[list[Any]],
    ) -> None:
        self._send(run, "executing", {"node": node_id, "display_node": node_id})
        if node["class_type"] == "KSampler":
            self._sample(run, node_id, node, messages)
        kind = OUTPUT_CLASSES.get(node["class_type"])
        if kind is not None:
            images = [self._image(run, node_id, node, kind)]
            outputs[node_id] = {"images": images}
            output = {"node": node_id, "display_node": node_id, "output": {"images": images}}
            self._send(run, "executed", output)

    def _sample(
        self, run: PromptRun, node_id: str, node: dict[str, Any], messages: list[list[Any]]
    ) -> None:
        steps = max(1, min(int(node["inputs"].get("steps") or 4), 6))
        fault = run.fault.kind if run.fault else None
        delay = (run.fault.delay or 0.2) if fault == "slow_run" and run.fault else self.step_delay
        for value in range(1, steps + 1):
            time.sleep(delay)
            if run.interrupt.is_set() or (fault == "interrupted" and value > steps // 2):
                self._stopped(run, "execution_interrupted", node_id, node, messages, {})
            if fault in ("oom", "execution_error") and value > steps // 2:
                oom = fault == "oom"
                failure: dict[str, Any] = {
                    "exception_type": "torch.OutOfMemoryError" if oom else "ValueError",
                    "exception_message": (run.fault and run.fault.message)
                    or (OOM_MESSAGE if oom else "Sandbox sampler failed: bad latent shape"),
                    "traceback": ["Traceback (most recent call last):", '  File "nodes.py"'],
                    "current_inputs": {},
                    "current_outputs": {},
                }
                self._stopped(run, "execution_error", node_id, node, messages, failure)
            self._send(run, "progress", {"value": value, "max": steps, "node": node_id})
            if value == 1 and run.client_id is not None:  # a preview: type 1, format 2 (PNG)
                self.emit(run.client_id, OP_BINARY, b"\0\0\0\1\0\0\0\2" + make_png("preview", 8, 8))
            if value == steps // 2 + 1 and run.client_id is not None:
                if fault == "drop_socket":
                    self.drop(run.client_id)
                elif fault == "malformed_frame":
                    self.emit(run.client_id, OP_TEXT, MALFORMED)

    def _stopped(
        self,
        run: PromptRun,
        kind: str,
        node_id: str,
        node: dict[str, Any],
        messages: list[list[Any]],
        extra: dict[str, Any],
    ) -> None:
        data = {
            "node_id": node_id,
            "node_type": node["class_type"],
            "executed": [],
            "timestamp": int(time.time() * 1000),
            **extra,
        }
        messages.append([kind, {"prompt_id": run.prompt_id, **data}])
        self._send(run, kind, data)
        raise _Stopped

    def _image(
        self, run: PromptRun, node_id: str, node: dict[str, Any], kind: str
    ) -> dict[str, str]:
        latent = next(
            (n for n in run.prompt.values() if n["class_type"] == "EmptyLatentImage"), None
        )
        size = latent["inputs"] if latent else {}
        width, height = (max(8, min(int(size.get(k) or 64) // 8, 64)) for k in ("width", "height"))
        self._images += 1
        prefix = str(node.get("inputs", {}).get("filename_prefix") or "ComfyUI")
        name = f"{prefix.replace('/', '_')}_{self._images:05d}_.png"
        self.save(f"{kind}/{name}", make_png(f"{run.prompt_id}:{node_id}", width, height))
        return {"filename": name, "subfolder": "", "type": kind}
