"""Offline emulator of the Gemini API (reference/provider-apis.md section 3).

Routes, under ``/v1beta`` (point a client's base URL at ``<url>/v1beta``; the google-genai SDK
takes ``base_url=<url>, api_version="v1beta"``):

* ``POST models/{model}:generateContent`` and ``:streamGenerateContent`` (``?alt=sse``: one
  ``data: <GenerateContentResponse>`` event per chunk, no ``[DONE]``; without it, a JSON array);
* ``GET models`` (``pageSize``/``pageToken``) and ``GET models/{model}``.

Auth is ``x-goog-api-key`` or ``?key=``: a missing key is 403 PERMISSION_DENIED, a wrong one
400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID - as Google answers. Requests may use
camelCase or snake_case keys; replies are camelCase. The text reply is derived from the prompt; an
IMAGE modality adds a real PNG as ``inlineData``; input images (edits) are echoed by size.

Fault kinds (``GEMINI_FAULT_KINDS``), queued with ``match`` on ``model``, ``prompt`` (the request's
text parts joined by newlines) or ``method`` (generateContent, streamGenerateContent, models.list,
models.get), or sent per request as ``X-Sandbox-Fault: kind;param=value``:

* errors: ``rate_limit`` (429 RESOURCE_EXHAUSTED, per-minute QuotaFailure, RetryInfo.retryDelay
  from ``retry_after``, default "2s"), ``daily_quota`` (429, PerDay quotaId), ``invalid_key``
  (400), ``permission_denied`` (403), ``not_found`` (404), ``overloaded`` (503 UNAVAILABLE),
  ``server_error`` (500 INTERNAL; ``status`` 503/504 pick UNAVAILABLE/DEADLINE_EXCEEDED);
* HTTP 200 content outcomes (generate calls only): ``prompt_blocked`` (promptFeedback.blockReason
  PROHIBITED_CONTENT, no candidates), ``safety_finish`` (finishReason SAFETY, no content),
  ``no_image`` (finishReason NO_IMAGE, text only), ``text_only`` (STOP, the image part dropped);
* transport: ``slow`` (sleep ``delay``, then answer), ``reset`` (TCP RST), ``non_json``,
  ``empty_error``.

``message``, ``status`` and ``body`` on a fault override the defaults.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from emp_tasks.sandbox.faults import Fault
from emp_tasks.sandbox.gemini_replies import (
    MODELS,
    GenerateRequest,
    RequestError,
    error_body,
    generate_reply,
    model_resource,
    parse_request,
    quota_body,
    stream_chunks,
)
from emp_tasks.sandbox.server import EmulatorHandler, EmulatorServer

__all__ = ["GEMINI_FAULT_KINDS", "GeminiEmulator", "key_invalid_body"]

PREFIX = "/v1beta/models"
KEY_INVALID = "API key not valid. Please pass a valid API key."
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_ERRORS: dict[str, tuple[int, str, str]] = {
    "permission_denied": (403, "PERMISSION_DENIED", "The caller does not have permission"),
    "not_found": (404, "NOT_FOUND", "models/{model} is not found for API version v1beta"),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "server_error": (500, "INTERNAL", "An internal error has occurred. Please retry."),
}
_SERVER_STATUS = {500: "INTERNAL", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_CONTENT = frozenset({"prompt_blocked", "safety_finish", "no_image", "text_only"})
_TRANSPORT = frozenset({"slow", "reset", "non_json", "empty_error"})
GEMINI_FAULT_KINDS = frozenset(
    {"rate_limit", "daily_quota", "invalid_key"} | _ERRORS.keys() | _CONTENT | _TRANSPORT
)
SSE_PAUSE = 0.01  # seconds between stream events, so a client really reads them one by one


def key_invalid_body() -> dict[str, Any]:
    """Google's reply to a wrong API key: 400 INVALID_ARGUMENT, reason API_KEY_INVALID."""
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": KEY_INVALID,
        },
    ]
    return error_body(400, "INVALID_ARGUMENT", KEY_INVALID, details)


def _retry_delay(value: str | float | None, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str):
        return value if value.endswith("s") else f"{value}s"
    return f"{value:g}s"


def _route(method: str, path: str) -> tuple[str, str | None] | None:
    """(API method, model) for a request line, or None when Gemini has no such route."""
    if path.rstrip("/") == PREFIX:
        return ("models.list", None) if method == "GET" else None
    if not path.startswith(PREFIX + "/"):
        return None
    name, _, verb = unquote(path[len(PREFIX) + 1 :]).partition(":")
    if not name or "/" in name:
        return None
    if method == "GET" and not verb:
        return "models.get", name
    if method == "POST" and verb in ("generateContent", "streamGenerateContent"):
        return verb, name
    return None


def _content_reply(kind: str, model: str, request: GenerateRequest) -> dict[str, Any]:
    # The model "declined" the image: whatever was asked, only text comes back.
    reply = generate_reply(model, dataclasses.replace(request, modalities=["TEXT"]))
    prompt_tokens = reply["usageMetadata"]["promptTokenCount"]
    usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
    meta = {"usageMetadata": usage, "modelVersion": model, "responseId": reply["responseId"]}
    if kind == "prompt_blocked":
        return {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, **meta}
    candidate = reply["candidates"][0]
    if kind == "safety_finish":
        rating = {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
        blocked = {"finishReason": "SAFETY", "index": 0, "safetyRatings": [rating]}
        return {"candidates": [blocked], **meta}
    if kind == "no_image":
        candidate["finishReason"] = "NO_IMAGE"
    return reply


class GeminiEmulator(EmulatorServer):
    """The Gemini API (generateContent, streaming, models) on loopback, with fault injection."""

    name = "gemini"
    fault_kinds = GEMINI_FAULT_KINDS

    def extract_token(self, h: EmulatorHandler) -> str | None:
        key = h.headers.get("x-goog-api-key") or h.query.get("key") or ""
        return key.strip() or None

    def handle_provider(self, h: EmulatorHandler) -> None:
        route = _route(h.command, h.path_only)
        if route is None:
            h.send_json(404, error_body(404, "NOT_FOUND", f"Method not found: {h.path_only}"))
        elif not h.auth_present:
            h.send_json(403, error_body(403, "PERMISSION_DENIED", UNREGISTERED))
        elif not h.auth_valid:
            h.send_json(400, key_invalid_body())
        elif route[0].startswith("models."):
            self._models(h, route[1])
        else:
            self._generate(h, route[0], str(route[1]))

    # -- generateContent ----------------------------------------------------------------

    def _generate(self, h: EmulatorHandler, method: str, model: str) -> None:
        request: GenerateRequest | None = None
        try:
            if not h.json_ok:
                raise RequestError("Invalid JSON payload received. Unexpected token.")
            request = parse_request(h.body_json)
            problem = None
        except RequestError as exc:
            problem = str(exc)
        attrs = {"method": method, "model": model, "prompt": request.prompt if request else None}
        h.extra.update({k: v for k, v in attrs.items() if v is not None})
        fault = self.take_fault(h, attrs)
        if fault is not None and self._answer_error_fault(h, fault, model):
            return
        if problem is not None or request is None:
            h.send_json(400, error_body(400, "INVALID_ARGUMENT", problem or "Invalid request"))
        elif model not in MODELS:
            self._not_found(h, model)
        elif "IMAGE" in request.modalities and not MODELS[model].image_output:
            message = "Model does not support the requested response modalities: image"
            h.send_json(400, error_body(400, "INVALID_ARGUMENT", message))
        elif fault is not None and fault.kind in _CONTENT:
            self._send_reply(h, _content_reply(fault.kind, model, request), method)
        else:
            self._send_reply(h, generate_reply(model, request), method)

    def _send_reply(self, h: EmulatorHandler, reply: dict[str, Any], method: str) -> None:
        if method == "generateContent":
            h.send_json(200, reply)
        elif h.query.get("alt") == "sse":
            events = [f"data: {json.dumps(c)}\r\n\r\n".encode() for c in stream_chunks(reply)]
            h.send_stream(200, _paced(events), sum(map(len, events)), "text/event-stream")
        else:
            h.send_json(200, stream_chunks(reply))

    # -- faults ---------------------------------------------------------------------------

    def _answer_error_fault(self, h: EmulatorHandler, fault: Fault, model: str | None) -> bool:
        """Answer with ``fault`` when it replaces the call with an error; False to carry on."""
        if fault.kind in _TRANSPORT:
            return self.apply_transport_fault(h, fault)  # `slow` sleeps, then carries on
        if fault.kind in _CONTENT:
            return False
        if fault.delay:
            time.sleep(fault.delay)
        status, body = self._fault_body(fault, model)
        h.send_json(
            fault.status or status, body if fault.body is None else fault.body, fault.headers
        )
        return True

    def _fault_body(self, fault: Fault, model: str | None) -> tuple[int, dict[str, Any]]:
        if fault.kind in ("rate_limit", "daily_quota"):
            per_day = fault.kind == "daily_quota"
            delay = _retry_delay(fault.retry_after, "20s" if per_day else "2s")
            body = quota_body(delay, per_day)
            status = 429
        elif fault.kind == "invalid_key":
            body, status = key_invalid_body(), 400
        else:
            status, rpc, message = _ERRORS[fault.kind]
            if fault.kind == "server_error" and fault.status:
                status, rpc = fault.status, _SERVER_STATUS.get(fault.status, "INTERNAL")
            body = error_body(status, rpc, message.format(model=model or "unknown"))
        if fault.message:
            body["error"]["message"] = fault.message
        return status, body

    # -- models ---------------------------------------------------------------------------

    def _models(self, h: EmulatorHandler, model: str | None) -> None:
        method = "models.get" if model else "models.list"
        h.extra["method"] = method
        fault = self.take_fault(h, {"method": method, "model": model})
        if fault is not None and self._answer_error_fault(h, fault, model):
            return
        if model is not None:
            info = MODELS.get(model)
            if info is None:
                self._not_found(h, model)
            else:
                h.send_json(200, model_resource(info))
            return
        try:
            size = min(max(int(h.query.get("pageSize") or 50), 1), 1000)
            start = int(h.query.get("pageToken") or 0)
        except ValueError:
            h.send_json(400, error_body(400, "INVALID_ARGUMENT", "Invalid page token or size."))
            return
        items = list(MODELS.values())
        body: dict[str, Any] = {"models": [model_resource(m) for m in items[start : start + size]]}
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        h.send_json(200, body)

    def _not_found(self, h: EmulatorHandler, model: str) -> None:
        message = (
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        h.send_json(404, error_body(404, "NOT_FOUND", message))


def _paced(events: list[bytes]) -> Iterator[bytes]:
    for index, event in enumerate(events):
        if index:
            time.sleep(SSE_PAUSE)
        yield event
