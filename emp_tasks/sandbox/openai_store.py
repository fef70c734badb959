"""The OpenAI emulator's background Responses: created queued, advanced one poll at a time.

A Response is `queued` on create, `in_progress` on the first polls and terminal on poll number
`polls_to_complete`, with the outcome chosen at create (or forced at a poll) by a fault:
completed (text, plus a real PNG per `image_generation` tool), a refusal, failed, incomplete or
cancelled. A non-background Response is terminal at once. Thread-safe: the emulator serves
requests concurrently. No sockets here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from emp_tasks.sandbox.openai_routes import (
    FAILED_MESSAGES,
    REFUSAL_TEXT,
    image_b64,
    new_id,
    prompt_of,
    reply_text,
)

__all__ = ["OUTCOMES", "ResponseStore", "StoredResponse"]

OUTCOMES = frozenset({"completed", "failed", "incomplete", "cancelled", "refusal"})


@dataclass
class StoredResponse:
    """One Response the emulator holds: its object, polls so far and its planned outcome."""

    body: dict[str, Any]
    prompt: str
    outcome: str = "completed"  # completed | failed | incomplete | cancelled | refusal
    detail: str | None = None  # error code (failed) or incomplete reason
    polls: int = 0

    @property
    def terminal(self) -> bool:
        return self.body["status"] not in ("queued", "in_progress")


@dataclass
class ResponseStore:
    """Background Responses by id; thread-safe, since the emulator serves concurrently."""

    polls_to_complete: int = 2
    items: dict[str, StoredResponse] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, request: dict[str, Any], outcome: str, detail: str | None) -> dict[str, Any]:
        """Store a new Response (queued, or already terminal without `background`)."""
        body = {
            "id": new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "queued",
            "background": bool(request.get("background")),
            "error": None,
            "incomplete_details": None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": request.get("model"),
            "output": [],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "store": request.get("store", True),
            "temperature": request.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": request.get("tool_choice", "auto"),
            "tools": request.get("tools") or [],
            "top_p": request.get("top_p", 1.0),
            "usage": None,
            "metadata": request.get("metadata") or {},
        }
        item = StoredResponse(body, prompt_of(request), outcome, detail)
        with self._lock:
            self.items[body["id"]] = item
            if not body["background"]:
                _finish(item)
            return dict(item.body)

    def get(self, rid: str) -> StoredResponse | None:
        """The stored Response, without counting a poll."""
        with self._lock:
            return self.items.get(rid)

    def retrieve(self, rid: str, outcome: str | None = None, detail: str | None = None) -> Any:
        """The Response after one more poll (None if unknown); a fault `outcome` ends it now."""
        with self._lock:
            item = self.items.get(rid)
            if item is None:
                return None
            if not item.terminal:
                item.polls += 1
                if outcome is not None:
                    item.outcome, item.detail, item.polls = outcome, detail, self.polls_to_complete
                item.body["status"] = "in_progress"
                if item.polls >= self.polls_to_complete:
                    _finish(item)
            return dict(item.body)

    def cancel(self, rid: str) -> Any:
        """Cancel a pending Response; a terminal one is returned as it is (cancel is idempotent)."""
        with self._lock:
            item = self.items.get(rid)
            if item is None:
                return None
            if not item.terminal:
                item.outcome = "cancelled"
                _finish(item)
            return dict(item.body)

    def delete(self, rid: str) -> bool:
        """Forget a Response; False if it was unknown."""
        with self._lock:
            return self.items.pop(rid, None) is not None


def _message(text: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return {
        "type": "message",
        "id": new_id("msg_"),
        "role": "assistant",
        "status": "completed",
        "content": content,
    }


def _image_calls(item: StoredResponse) -> list[dict[str, Any]]:
    tools = [t for t in item.body["tools"] if isinstance(t, dict)]
    wanted = [t for t in tools if t.get("type") == "image_generation"]
    return [
        {
            "type": "image_generation_call",
            "id": new_id("ig_"),
            "status": "completed",
            "result": image_b64(f"{item.prompt}|{i}", tool.get("size")),
            "output_format": "png",
            "revised_prompt": item.prompt,
        }
        for i, tool in enumerate(wanted[:1])  # one image per call, as the tool does
    ]


def _finish(item: StoredResponse) -> None:
    body, outcome = item.body, item.outcome
    text = REFUSAL_TEXT if outcome == "refusal" else reply_text(item.prompt)
    body["status"] = {"refusal": "completed"}.get(outcome, outcome)
    body["completed_at"] = int(time.time()) if body["status"] == "completed" else None
    if outcome == "completed":
        calls = _image_calls(item)
        body["output"] = [*calls, _message("Here is your image." if calls else text)]
    elif outcome == "refusal":
        body["output"] = [_message(text)]
    elif outcome == "incomplete":
        body["output"] = [_message(text[: max(1, len(text) // 2)])]
        body["incomplete_details"] = {"reason": item.detail or "max_output_tokens"}
    elif outcome == "failed":
        code = item.detail or "server_error"
        message = FAILED_MESSAGES.get(code, f"The response failed ({code}).")
        body["error"] = {"code": code, "message": message}
    if body["status"] in ("completed", "incomplete"):
        i = max(1, len(item.prompt.split()))
        o = max(1, len(text.split()))
        body["usage"] = {
            "input_tokens": i,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": o,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": i + o,
        }
