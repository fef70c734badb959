"""Offline emulator of the OpenAI API (reference/provider-apis.md section 2).

Routes, all under ``/v1`` with ``Authorization: Bearer <token>``:

* ``POST /v1/chat/completions`` - plain JSON, or SSE with ``"stream": true``: ``data: <chunk>``
  frames, the usage chunk with ``stream_options.include_usage``, then ``data: [DONE]``;
* ``POST /v1/responses`` - ``background: true`` answers ``queued``; ``GET /v1/responses/{id}``
  moves it ``in_progress`` and then, on poll number ``polls_to_complete``, to its terminal state;
  ``POST /v1/responses/{id}/cancel`` and ``DELETE /v1/responses/{id}``. An ``image_generation``
  tool adds an ``image_generation_call`` with a real base64 PNG. Streamed Responses are not
  emulated (400);
* ``POST /v1/images/generations`` - ``b64_json`` PNGs (PNG whatever ``output_format`` says);
* ``GET /v1/models`` and ``GET /v1/models/{id}``.

Every reply carries ``x-request-id``, ``openai-processing-ms`` and the ``x-ratelimit-*``
headers; every error is ``{"error": {message, type, param, code}}``.

Faults, queued with ``queue_faults([...], match={...})`` or sent as ``X-Sandbox-Fault``. Match
keys: ``endpoint`` (``chat.completions``, ``responses.create``, ``responses.retrieve``,
``responses.cancel``, ``images.generate``, ``models``), ``path``, ``model``, ``prompt`` (the
user's text; a poll of a Response matches its create's model and prompt) and ``stream``.

* HTTP errors on any endpoint: ``rate_limit`` (429 ``rate_limit_exceeded``, ``retry-after`` and
  ``retry-after-ms``, default 1 s), ``insufficient_quota`` (429), ``invalid_api_key`` (401),
  ``moderation_blocked`` (400 ``image_generation_user_error``), ``content_policy_violation``
  (400), ``model_not_found`` (404), ``server_error`` (500), ``overloaded`` (503 + retry-after),
  ``should_retry_false`` (500 + ``x-should-retry: false``); plus ``slow`` and ``reset``;
* streamed chat only: ``mid_stream_error`` (chunks, then ``data: {"error": ...}``; a dict
  ``body`` replaces the error object) and ``stream_cut`` (chunks, no finish, no ``[DONE]``);
* Responses create or poll: ``response_failed`` (``error.code`` = fault ``message`` or
  ``server_error``), ``response_incomplete`` (reason = ``message`` or ``max_output_tokens``),
  ``response_cancelled``, ``refusal`` (completed with refusal text; on chat: ``content_filter``;
  on images: ``moderation_blocked``).

A fault that does not apply to the request it matched is dropped (noted in the call log).
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.openai_routes import (
    BASE_HEADERS,
    HTTP_FAULTS,
    MODELS,
    auth_error,
    chat_chunks,
    chat_completion,
    error_body,
    fault_reply,
    images_reply,
    models_list,
    new_id,
    prompt_of,
)
from emp_tasks.sandbox.openai_store import ResponseStore
from emp_tasks.sandbox.server import EmulatorHandler, EmulatorServer

__all__ = ["OPENAI_FAULT_KINDS", "OpenAIEmulator", "endpoint_of"]

_STREAM_FAULTS = frozenset({"mid_stream_error", "stream_cut"})
_RESPONSE_FAULTS = {
    "response_failed": "failed",
    "response_incomplete": "incomplete",
    "response_cancelled": "cancelled",
    "refusal": "refusal",
}
OPENAI_FAULT_KINDS = frozenset({"slow", "reset", *HTTP_FAULTS, *_STREAM_FAULTS, *_RESPONSE_FAULTS})
_INVALID = "invalid_request_error"
_ROUTES: tuple[tuple[str, str, str], ...] = (  # (method, path with * for an id, endpoint)
    ("POST", "/v1/chat/completions", "chat.completions"),
    ("POST", "/v1/responses", "responses.create"),
    ("POST", "/v1/images/generations", "images.generate"),
    ("GET", "/v1/models", "models"),
    ("GET", "/v1/models/*", "models"),
    ("GET", "/v1/responses/*", "responses.retrieve"),
    ("DELETE", "/v1/responses/*", "responses.delete"),
    ("POST", "/v1/responses/*/cancel", "responses.cancel"),
)


def endpoint_of(method: str, path: str) -> str | None:
    """The endpoint name of a request, or None for a route OpenAI does not have."""
    parts = path.rstrip("/").split("/")
    for want_method, pattern, name in _ROUTES:
        want = pattern.split("/")
        same_shape = method == want_method and len(want) == len(parts)
        if same_shape and all(w in ("*", p) for w, p in zip(want, parts, strict=True)):
            return name
    return None


def _path_id(path: str) -> str | None:
    parts = path.rstrip("/").split("/")  # /v1/<collection>/<id>[/cancel]
    return parts[3] if len(parts) > 3 else None


class OpenAIEmulator(EmulatorServer):
    """The OpenAI API on loopback: chat (SSE), background Responses, Images, models; faults."""

    name = "openai"
    fault_kinds = OPENAI_FAULT_KINDS

    def __init__(self, *args: Any, polls_to_complete: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store = ResponseStore(polls_to_complete=max(1, polls_to_complete))

    # -- sending -------------------------------------------------------------------------

    def _headers(self, h: EmulatorHandler, extra: Mapping[str, str] | None) -> dict[str, str]:
        elapsed = time.monotonic() - h.extra.get("started", time.monotonic())
        return {
            "x-request-id": h.extra.setdefault("request_id", new_id("req_")),
            "openai-processing-ms": str(round(elapsed * 1000)),
            **BASE_HEADERS,
            **(extra or {}),
        }

    def _json(self, h: EmulatorHandler, status: int, obj: Any, **headers: str) -> None:
        h.send_json(status, obj, self._headers(h, headers))

    def _error(self, h: EmulatorHandler, status: int, message: str, **kw: Any) -> None:
        h.extra["error"] = message
        body = error_body(message, kw.get("kind", _INVALID), kw.get("code"), kw.get("param"))
        self._json(h, status, body)

    def _sse(self, h: EmulatorHandler, frames: Iterable[Any], done: bool) -> None:
        """A chunked `text/event-stream`: one `data:` frame per item, then `[DONE]` if `done`."""
        h.send_response(200)
        for name, value in self._headers(h, {"Content-Type": "text/event-stream"}).items():
            h.send_header(name, value)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        lines = [f"data: {json.dumps(frame)}\n\n" for frame in frames]
        for line in [*lines, "data: [DONE]\n\n"] if done else lines:
            data = line.encode("utf-8")
            h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()
        h.wfile.write(b"0\r\n\r\n")

    # -- routing -------------------------------------------------------------------------

    def handle_provider(self, h: EmulatorHandler) -> None:
        h.extra["started"] = time.monotonic()
        endpoint = endpoint_of(h.command, h.path_only)
        if not h.auth_valid:  # checked first: a bad key never consumes a queued fault
            h.extra["error"] = "invalid api key"
            self._json(h, 401, auth_error(self.extract_token(h)))
        elif endpoint is None:
            self._error(h, 404, f"Invalid URL ({h.command} {h.path_only})")
        elif not h.json_ok or not isinstance(h.body_json, dict | None):
            self._error(h, 400, "We could not parse the JSON body of your request.")
        else:
            h.extra["endpoint"] = endpoint
            self._dispatch(h, endpoint, h.body_json or {})

    def _attrs(self, h: EmulatorHandler, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """The request's match keys; a Response's poll matches its create's model and prompt."""
        attrs = {"endpoint": endpoint, "path": h.path_only, "stream": bool(body.get("stream"))}
        rid = _path_id(h.path_only) if endpoint.startswith("responses.") else None
        stored = self.store.get(rid) if rid else None
        if stored is not None:
            return {**attrs, "model": stored.body.get("model"), "prompt": stored.prompt}
        return {**attrs, "model": body.get("model"), "prompt": prompt_of(body)}

    def _dispatch(self, h: EmulatorHandler, endpoint: str, body: dict[str, Any]) -> None:
        attrs = self._attrs(h, endpoint, body)
        fault = self.take_fault(h, attrs)
        if fault is not None and fault.kind in HTTP_FAULTS:
            # Answered here, not by apply_transport_fault: OpenAI's 500 is the JSON envelope.
            if fault.delay:
                time.sleep(fault.delay)
            status, reply, headers = fault_reply(fault, attrs["model"], self.extract_token(h))
            h.extra["error"] = fault.kind
            self._json(h, status, reply, **headers)
            return
        if fault is not None and self.apply_transport_fault(h, fault):
            return
        getattr(self, "_" + endpoint.replace(".", "_"))(h, body, fault)

    def _applies(self, h: EmulatorHandler, fault: Fault | None, kinds: Collection[str]) -> Any:
        """`fault` if this endpoint can apply it; else None (noted in the call log)."""
        if fault is None or fault.kind == "slow":
            return None
        if fault.kind in kinds:
            return fault
        h.extra["fault_ignored"] = fault.kind
        return None

    def _missing(self, h: EmulatorHandler, body: dict[str, Any], *names: str) -> bool:
        for name in names:
            if body.get(name) in (None, "", []):
                msg = f"Missing required parameter: '{name}'."
                self._error(h, 400, msg, code="missing_required_parameter", param=name)
                return True
        return False

    # -- endpoints -----------------------------------------------------------------------

    def _chat_completions(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        if self._missing(h, body, "model", "messages"):
            return
        stream = bool(body.get("stream"))
        fault = self._applies(h, fault, {"refusal", *(_STREAM_FAULTS if stream else ())})
        kind = fault.kind if fault else None
        if not stream:
            self._json(h, 200, chat_completion(body, kind == "refusal"))
            return
        frames: list[Any] = chat_chunks(body, kind == "refusal", cut=kind in _STREAM_FAULTS)
        if kind == "mid_stream_error":
            text = fault.message or "The server had an error while processing your request."
            info = error_body(text, "server_error", "server_error")["error"]
            frames.append({"error": fault.body if isinstance(fault.body, dict) else info})
        self._sse(h, frames, done=kind not in _STREAM_FAULTS)

    def _responses_create(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        if self._missing(h, body, "model", "input"):
            return
        if body.get("stream"):
            msg = "The sandbox does not emulate streamed Responses; poll a background one."
            self._error(h, 400, msg, param="stream")
        elif body.get("background") and body.get("store") is False:
            self._error(h, 400, "Background mode requires store=true.", param="store")
        else:
            fault = self._applies(h, fault, _RESPONSE_FAULTS)
            outcome = _RESPONSE_FAULTS[fault.kind] if fault else "completed"
            created = self.store.create(body, outcome, fault.message if fault else None)
            h.extra["response_id"] = created["id"]
            self._json(h, 200, created)

    def _responses_retrieve(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        fault = self._applies(h, fault, _RESPONSE_FAULTS)
        outcome = _RESPONSE_FAULTS[fault.kind] if fault else None
        rid = _path_id(h.path_only) or ""
        self._stored(h, rid, self.store.retrieve(rid, outcome, fault.message if fault else None))

    def _responses_cancel(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        rid = _path_id(h.path_only) or ""
        stored = self.store.get(rid)
        if stored is not None and not stored.body["background"]:
            msg = "Only responses created with background=true can be cancelled."
            self._error(h, 400, msg)
        else:
            self._stored(h, rid, self.store.cancel(rid))

    def _responses_delete(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        rid = _path_id(h.path_only) or ""
        deleted = {"id": rid, "object": "response.deleted", "deleted": True}
        self._stored(h, rid, deleted if self.store.delete(rid) else None)

    def _stored(self, h: EmulatorHandler, rid: str, found: Any) -> None:
        if found is None:
            self._error(h, 404, f"Response with id '{rid}' not found.", param="response_id")
            return
        h.extra["status"] = found.get("status")
        self._json(h, 200, found)

    def _images_generate(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        if self._missing(h, body, "prompt"):
            return
        n = body.get("n") or 1
        if self._applies(h, fault, {"refusal"}) is not None:
            status, reply, headers = fault_reply(Fault("moderation_blocked"), None, None)
            self._json(h, status, reply, **headers)
        elif not isinstance(n, int) or not 1 <= n <= 10:
            self._error(h, 400, f"Invalid 'n': {n!r}. Expected a value from 1 to 10.", param="n")
        else:
            self._json(h, 200, images_reply({**body, "model": body.get("model") or "dall-e-2"}))

    def _models(self, h: EmulatorHandler, body: dict[str, Any], fault: Any) -> None:
        name = _path_id(h.path_only)
        listing = models_list()
        if name is None:
            self._json(h, 200, listing)
        elif name in MODELS:
            self._json(h, 200, next(m for m in listing["data"] if m["id"] == name))
        else:
            msg = f"The model '{name}' does not exist"
            self._error(h, 404, msg, code="model_not_found", param="model")
