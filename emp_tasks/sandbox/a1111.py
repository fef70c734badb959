"""Offline emulator of AUTOMATIC1111's web UI API (reference/provider-apis.md section 6).

Routes: ``POST /sdapi/v1/txt2img`` and ``/sdapi/v1/img2img`` (blocking: each takes ``steps *
step_seconds`` and runs one at a time, as the web UI's queue lock makes them), ``GET
/sdapi/v1/progress`` (the running generation's step, answered on any other connection meanwhile),
``GET /sdapi/v1/options``, ``/sdapi/v1/sd-models``, ``/sdapi/v1/samplers``, ``POST
/sdapi/v1/interrupt``. ``api=False`` emulates a server started without ``--api``: every route
answers FastAPI's 404 ``{"detail": "Not Found"}``. A token of the form ``user:pass`` turns on
HTTP Basic auth (``--api-auth``); without one, any caller is let in.

Faults, queued with ``match`` on ``endpoint`` (txt2img, img2img, options, ...) or ``prompt``, or
sent as ``X-Sandbox-Fault`` (``/progress`` only takes the header's, never a queued one, so a
poll cannot steal a job's fault): ``oom`` (half the steps, then 500 ``OutOfMemoryError``),
``reset`` (half the steps, then the socket is dropped mid-job), ``server_error`` (500
``RuntimeError``), ``no_api`` (404 Not Found), ``unauthorized`` (401), ``validation`` (422
naming the field in ``message``, default ``steps``), and ``slow``, ``non_json``, ``empty_error``.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Iterable
from typing import Any

from emp_tasks.sandbox.a1111_replies import (
    SAMPLERS,
    Generation,
    RequestProblem,
    check_request,
    generation_reply,
    http_error,
    invalid,
    not_found,
    oom_error,
    options,
    progress_reply,
    sd_models,
)
from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.server import EmulatorHandler, EmulatorServer

__all__ = ["A1111_FAULT_KINDS", "A1111Emulator"]

PREFIX = "/sdapi/v1/"
_GENERATE = frozenset({"txt2img", "img2img"})
_GETS = frozenset({"progress", "options", "sd-models", "samplers"})
_MID_JOB = frozenset({"oom", "reset"})
_ANSWERS = frozenset({"server_error", "no_api", "unauthorized", "validation"})
_TRANSPORT = frozenset({"slow", "non_json", "empty_error"})
A1111_FAULT_KINDS = _MID_JOB | _ANSWERS | _TRANSPORT


class A1111Emulator(EmulatorServer):
    """AUTOMATIC1111's `/sdapi/v1` on loopback: blocking generation, live progress, faults."""

    name = "a1111"
    fault_kinds = A1111_FAULT_KINDS

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: Iterable[str] = ("sandbox-token",),
        latency: float = 0.0,
        *,
        step_seconds: float = 0.02,
        api: bool = True,
    ) -> None:
        super().__init__(host, port, tokens, latency)
        self.step_seconds = step_seconds
        self.api = api
        self.auth_required = any(":" in token for token in self.tokens)
        self._queue = threading.Lock()  # the web UI runs one generation at a time
        self._state = threading.Lock()
        self._run: Generation | None = None
        self._step = 0
        self._interrupted = False

    def extract_token(self, h: EmulatorHandler) -> str | None:
        scheme, _, value = (h.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None

    def handle_provider(self, h: EmulatorHandler) -> None:
        name = h.path_only[len(PREFIX) :] if h.path_only.startswith(PREFIX) else None
        if name is None or not self.api:
            h.send_json(404, not_found())
        elif self.auth_required and not h.auth_valid:
            h.send_json(401, http_error(401, "Incorrect username or password"))
        elif name in _GENERATE and h.command == "POST":
            self._generate(h, name)
        elif name in _GETS and h.command == "GET":
            self._get(h, name)
        elif name == "interrupt" and h.command == "POST":
            with self._state:
                self._interrupted = self._run is not None
            h.send_json(200, {})
        elif name in _GENERATE | _GETS | {"interrupt"}:
            h.send_json(405, {"detail": "Method Not Allowed"})
        else:
            h.send_json(404, not_found())

    def _get(self, h: EmulatorHandler, name: str) -> None:
        h.extra["endpoint"] = name
        fault = h.header_fault if name == "progress" else self.take_fault(h, {"endpoint": name})
        if fault is not None and self._answer_fault(h, fault):
            return
        if name == "progress":
            with self._state:
                run, step = self._run, self._step
            left = (run.steps - step) * self.step_seconds if run else 0.0
            h.send_json(200, progress_reply(run, step, left))
        elif name == "options":
            h.send_json(200, options())
        elif name == "sd-models":
            h.send_json(200, sd_models())
        else:
            h.send_json(200, [{"name": s, "aliases": [], "options": {}} for s in SAMPLERS])

    def _generate(self, h: EmulatorHandler, endpoint: str) -> None:
        body = h.body_json if h.json_ok else None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        h.extra.update(endpoint=endpoint, prompt=prompt)
        fault = self.take_fault(h, {"endpoint": endpoint, "prompt": prompt})
        if fault is not None and fault.kind not in _MID_JOB and self._answer_fault(h, fault):
            return
        try:
            run = check_request(endpoint, body)
        except RequestProblem as problem:
            h.send_json(problem.status, problem.body)
            return
        with self._queue:
            finished = self._steps(run, fault)
        if fault is not None and fault.kind == "reset":
            h.reset_connection()
        elif fault is not None and fault.kind == "oom":
            h.send_json(500, oom_error())
        else:  # an interrupted run still answers 200 with its images, as the web UI does
            h.extra["interrupted"] = not finished
            h.send_json(200, generation_reply(run))

    def _steps(self, run: Generation, fault: Fault | None) -> bool:
        """Step through the generation (half of it for a mid-job fault); False if interrupted."""
        stop_at = run.steps // 2 if fault is not None and fault.kind in _MID_JOB else run.steps
        with self._state:
            self._run, self._step, self._interrupted = run, 0, False
        try:
            for step in range(1, stop_at + 1):
                time.sleep(self.step_seconds)
                with self._state:
                    self._step = step
                    if self._interrupted:
                        return False
            return True
        finally:
            with self._state:
                self._run, self._step = None, 0

    def _answer_fault(self, h: EmulatorHandler, fault: Fault) -> bool:
        """Answer with `fault` when it replaces the reply; False to carry on (`slow`)."""
        if fault.kind in _TRANSPORT:
            return self.apply_transport_fault(h, fault)
        if fault.kind in _MID_JOB:
            return False  # only a generation can fail mid-job
        if fault.delay:
            time.sleep(fault.delay)
        status, body = self._fault_reply(fault)
        self.send_fault(h, fault, fault.status or status, body, None)
        return True

    def _fault_reply(self, fault: Fault) -> tuple[int, Any]:
        if fault.kind == "no_api":
            return 404, not_found()
        if fault.kind == "unauthorized":
            return 401, http_error(401, "Incorrect username or password")
        if fault.kind == "validation":
            problem = invalid(
                fault.message or "steps", "value is not a valid integer", "type_error"
            )
            return problem.status, problem.body
        errors = fault.message or "Sandbox: simulated server error"
        return 500, {"error": "RuntimeError", "detail": "", "body": "", "errors": errors}
