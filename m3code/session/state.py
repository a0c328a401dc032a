"""Rebuilding a conversation from a session's events, for --resume and for `sessions show`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m3code.providers.types import Message, ToolCall, Usage, tool_images
from m3code.session.events import (
    AssistantMessage,
    Compaction,
    SessionEnded,
    SessionStarted,
    SteeringEvent,
    ToolCallStarted,
    ToolResultEvent,
    UserMessage,
)


def steering_message(text: str) -> Message:
    """How words a person sends while the agent works enter its conversation."""
    return Message(role="user", content=f"[A message from the person while you work]\n{text}")


@dataclass
class SessionState:
    started: SessionStarted
    messages: list[Message] = field(default_factory=list)  # the history after the system prompt
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    steering_taken: int = 0
    ended: SessionEnded | None = None
    # Calls of the last assistant turn that have no result yet: started (maybe half done) or never begun.
    started_unfinished: list[ToolCall] = field(default_factory=list)
    not_started: list[ToolCall] = field(default_factory=list)


def rebuild(events: list[Any]) -> SessionState:
    if not events or not isinstance(events[0], SessionStarted):
        raise ValueError("the event log does not begin with session_started")
    state = SessionState(started=events[0])
    pending: dict[str, ToolCall] = {}
    started: set[str] = set()
    for event in events[1:]:
        if isinstance(event, SteeringEvent):
            state.steering_taken += 1
        if isinstance(event, (AssistantMessage, Compaction)):
            state.usage = state.usage + event.usage  # every agent's spending counts against the job's budget
        if event.agent != "main":
            continue  # a team's agents are rebuilt step by step by the team, not as one conversation
        if isinstance(event, SteeringEvent):
            state.messages.append(steering_message(event.text))
        elif isinstance(event, UserMessage):
            state.messages.append(Message(role="user", content=event.content, images=event.images))  # images
        elif isinstance(event, AssistantMessage):
            state.messages.append(event.message)
            state.turns += 1
            pending = {call.id: call for call in event.message.tool_calls}
            started = set()
        elif isinstance(event, ToolCallStarted):
            started.add(event.call_id)
        elif isinstance(event, ToolResultEvent):
            pending.pop(event.call_id, None)
            state.messages.append(
                Message(role="tool", tool_call_id=event.call_id, name=event.name, content=event.output,
                        is_error=event.is_error,
                        images=tool_images(event.data))  # images: restored from the logged data["image"]
            )
        elif isinstance(event, Compaction):
            state.messages = list(event.messages)
        elif isinstance(event, SessionEnded):
            state.ended = event
    state.started_unfinished = [c for c in pending.values() if c.id in started]
    state.not_started = [c for c in pending.values() if c.id not in started]
    return state
