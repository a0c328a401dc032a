"""The typed events of a session. One JSON object per line in events.jsonl.

Persisted events are the whole truth of a session: `--resume` rebuilds the conversation from them.
Live-only events (deltas) go to views as they happen and are not written: the message they add up to is.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from m3code.providers.types import Message, ReasoningDelta, Retrying, TextDelta, ToolCallDelta, Usage


class _Event(BaseModel):
    ts: float = Field(default_factory=time.time)


class SessionStarted(_Event):
    type: Literal["session_started"] = "session_started"
    session_id: str
    task: str
    workspace: str
    system_prompt: str
    model: str
    base_url: str
    api_format: str
    version: str


class SessionResumed(_Event):
    type: Literal["session_resumed"] = "session_resumed"
    interrupted_calls: list[str] = Field(default_factory=list)


class UserMessage(_Event):
    type: Literal["user_message"] = "user_message"
    content: str


class AssistantMessage(_Event):
    type: Literal["assistant_message"] = "assistant_message"
    message: Message
    usage: Usage
    stop_reason: str


class ToolCallStarted(_Event):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    name: str
    arguments: str


class ToolResultEvent(_Event):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    output: str
    is_error: bool = False
    data: dict[str, Any] = Field(default_factory=dict)
    duration: float = 0.0


class Compaction(_Event):
    """Older turns were summarised: `messages` is the whole new history after the system prompt."""

    type: Literal["compaction"] = "compaction"
    summary: str
    messages: list[Message]
    tokens_before: int
    usage: Usage = Field(default_factory=Usage)


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str
    fatal: bool = False


class SessionEnded(_Event):
    type: Literal["session_ended"] = "session_ended"
    status: Literal["done", "failed", "budget", "interrupted"]
    exit_code: int
    final_answer: str = ""
    reason: str = ""
    usage: Usage = Field(default_factory=Usage)


PersistedEvent = Annotated[
    SessionStarted | SessionResumed | UserMessage | AssistantMessage | ToolCallStarted | ToolResultEvent
    | Compaction | ErrorEvent | SessionEnded,
    Field(discriminator="type"),
]
# What views receive: everything persisted, plus the live deltas of a streaming turn.
LiveEvent = PersistedEvent | TextDelta | ReasoningDelta | ToolCallDelta | Retrying

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(PersistedEvent)


def parse_event(line: str) -> Any:
    return EVENT_ADAPTER.validate_json(line)
