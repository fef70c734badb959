"""Read job events from the broker and hand each to a callback as one JSON line."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from emp_tasks.events import EVENT_NAMES, EVENT_PREFIX

__all__ = ["event_line", "stream_events"]

_CELERY_FIELDS = ("hostname", "utcoffset", "pid", "clock", "local_received")


def event_line(event: dict[str, Any], show_all: bool = False) -> str | None:
    """The JSON line for an event, or None for events we do not show."""
    kind = str(event.get("type", ""))
    name = kind.removeprefix(EVENT_PREFIX)
    if name not in EVENT_NAMES and not (show_all and kind.startswith(EVENT_PREFIX)):
        return None
    fields = {k: v for k, v in event.items() if k not in _CELERY_FIELDS and k != "type"}
    return json.dumps({"event": name, **fields}, default=str, sort_keys=False)


def stream_events(
    app: Any,
    emit: Callable[[str], None],
    show_all: bool = False,
    limit: int | None = None,
    timeout: float | None = None,
) -> None:
    """Capture events until interrupted (or `limit` events, or `timeout` seconds of silence)."""
    seen = 0

    def on_event(event: dict[str, Any]) -> None:
        nonlocal seen
        line = event_line(event, show_all)
        if line is not None:
            emit(line)
            seen += 1
            if limit is not None and seen >= limit:
                receiver.should_stop = True

    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": on_event})
        receiver.capture(limit=None, timeout=timeout, wakeup=True)
