"""The event log survives a torn last line and rebuilds the conversation."""

from __future__ import annotations

from pathlib import Path

from m3code.providers.types import Message, ToolCall, Usage
from m3code.session.events import (
    AssistantMessage,
    SessionStarted,
    ToolCallStarted,
    ToolResultEvent,
    UserMessage,
)
from m3code.session.log import EventLog, read_events
from m3code.session.state import rebuild


def started() -> SessionStarted:
    return SessionStarted(session_id="s", task="t", workspace="/w", system_prompt="p", model="m",
                          base_url="u", api_format="openai", version="0")


def test_torn_tail_is_dropped_and_state_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / ".m3code" / "sessions" / "s"
    log = EventLog(folder)
    calls = [ToolCall(id="a", name="read", arguments="{}"), ToolCall(id="b", name="bash", arguments="{}"),
             ToolCall(id="c", name="glob", arguments="{}")]
    for event in (started(), UserMessage(content="t"),
                  AssistantMessage(message=Message(role="assistant", tool_calls=calls),
                                   usage=Usage(input_tokens=5, cost_usd=0.5), stop_reason="tool_use"),
                  ToolCallStarted(call_id="a", name="read", arguments="{}"),
                  ToolResultEvent(call_id="a", name="read", output="ok"),
                  ToolCallStarted(call_id="b", name="bash", arguments="{}")):
        log.append(event, sync=True)
    log.close()
    with open(folder / "events.jsonl", "a") as fh:
        fh.write('{"type": "tool_result", "call_id": "b", "na')  # the process died mid-write

    state = rebuild(list(read_events(folder)))
    assert [m.role for m in state.messages] == ["user", "assistant", "tool"]
    assert [c.id for c in state.started_unfinished] == ["b"]
    assert [c.id for c in state.not_started] == ["c"]
    assert state.usage.cost_usd == 0.5 and state.turns == 1
    ignored = (tmp_path / ".m3code" / ".gitignore").read_text().split()
    assert ignored == ["sessions/", "worktrees/", "bench/", ".gitignore"]

    EventLog(folder).append(UserMessage(content="more"), sync=True)  # reopening trims the torn line
    assert [type(e).__name__ for e in read_events(folder)][-1] == "UserMessage"
