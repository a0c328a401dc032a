"""A live session: persists events to its log and hands every event to the views listening."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from m3code.providers.types import ReasoningDelta, Retrying, TextDelta, ToolCallDelta
from m3code.session.log import EventLog

Listener = Callable[[Any], None]

# Views see these as they happen; the log keeps the message they add up to instead.
LIVE_ONLY = (TextDelta, ReasoningDelta, ToolCallDelta, Retrying)


class Session:
    def __init__(self, session_id: str, folder: Path, listeners: list[Listener] | None = None) -> None:
        self.id = session_id
        self.folder = folder
        self.log = EventLog(folder)
        self.listeners: list[Listener] = list(listeners or [])

    def emit(self, event: Any, *, sync: bool = False) -> None:
        """Record a persisted event (fsync when it closes a step) and show any event to the views."""
        if not isinstance(event, LIVE_ONLY):
            self.log.append(event, sync=sync)
        for listener in self.listeners:
            listener(event)

    def close(self) -> None:
        self.log.close()
