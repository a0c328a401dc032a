"""Whole assistant turns through both wire formats, streamed and not, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from m3code.providers import Message, ToolCall, ToolSpec
from m3code.providers.types import ApiFormat
from m3code.replay import ScriptedModelServer
from tests.providers.helpers import FORMATS, Recorder, conversation, provider_for

StartServer = Callable[..., ScriptedModelServer]
TOOLS = [ToolSpec(name="read", description="Read a file.", parameters={"type": "object", "properties": {}})]

both_formats = pytest.mark.parametrize("api_format", FORMATS)
both_modes = pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])


@both_formats
@both_modes
async def test_plain_text(scripted_server: StartServer, api_format: ApiFormat, stream: bool) -> None:
    server = scripted_server({"turns": [{"content": "Hello, world. " * 5}]})
    provider = provider_for(server, api_format, stream)
    events = Recorder()
    completion = await provider.complete(conversation(), [], on_event=events)
    await provider.aclose()
    assert completion.message.role == "assistant"
    assert completion.message.content == "Hello, world. " * 5
    assert completion.message.reasoning == "" and completion.message.tool_calls == []
    assert completion.stop_reason == "end_turn"
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
    assert completion.usage.cost_usd > 0
    if stream:
        assert len(events.of("text")) > 1 and events.text("text") == completion.message.content
    else:
        assert events.events == []


@both_modes
async def test_reasoning_in_think_tags_split_across_chunks(
    scripted_server: StartServer, stream: bool
) -> None:
    # A model outside the MiniMax table gets no reasoning_split, so the server puts reasoning in <think>.
    turns = [
        {"reasoning": "The bug is in slug.py.", "content": "Found it.", "chunk_size": 3},
        {"content": "ok"},
    ]
    server = scripted_server({"turns": turns})
    provider = provider_for(server, "openai", stream, model="local-m3")
    events = Recorder()
    first = await provider.complete(conversation(), [], on_event=events)
    assert first.message.reasoning == "The bug is in slug.py."
    assert first.message.content == "Found it."
    assert first.message.provider_state == {"reasoning_format": "think_tags"}
    if stream:
        assert events.text("text") == "Found it."
        assert events.text("reasoning").strip() == "The bug is in slug.py."
        assert not any("think>" in e.text for e in events.of("text") + events.of("reasoning"))
    assert (
        "reasoning_split" not in server.requests[0]["body"] and "thinking" not in server.requests[0]["body"]
    )

    await provider.complete([*conversation(), first.message, Message(role="user", content="go on")], [])
    await provider.aclose()
    sent = server.requests[1]["body"]["messages"][2]
    assert sent["role"] == "assistant"
    assert sent["content"] == "<think>\nThe bug is in slug.py.\n</think>\n\nFound it."


@both_modes
async def test_reasoning_details_when_reasoning_split(scripted_server: StartServer, stream: bool) -> None:
    server = scripted_server(
        {"turns": [{"reasoning": "Think first.", "content": "Done."}, {"content": "ok"}]}
    )
    provider = provider_for(server, "openai", stream)
    events = Recorder()
    first = await provider.complete(conversation(), [], on_event=events)
    body = server.requests[0]["body"]
    assert body["reasoning_split"] is True and body["thinking"] == {"type": "adaptive"}
    assert first.message.reasoning == "Think first." and first.message.content == "Done."
    state = first.message.provider_state
    assert state["reasoning_format"] == "reasoning_details"
    assert state["reasoning_details"][0]["type"] == "reasoning.text"
    assert state["reasoning_details"][0]["text"] == "Think first."
    if stream:
        assert events.text("reasoning") == "Think first."

    await provider.complete([*conversation(), first.message, Message(role="user", content="next")], [])
    await provider.aclose()
    sent = server.requests[1]["body"]["messages"][2]
    assert sent["content"] == "Done."
    assert sent["reasoning_details"] == state["reasoning_details"]


@both_modes
async def test_anthropic_thinking_goes_back_verbatim(scripted_server: StartServer, stream: bool) -> None:
    turns = [
        {"reasoning": "Read it first.", "content": "Reading.", "tool_calls": [{"id": "t1", "name": "read"}]},
        {"content": "ok"},
    ]
    server = scripted_server({"turns": turns})
    provider = provider_for(server, "anthropic", stream, thinking="enabled")
    events = Recorder()
    first = await provider.complete(conversation(), TOOLS, on_event=events)
    body = server.requests[0]["body"]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert body["system"] == "You are a coding agent."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]}]
    assert first.message.reasoning == "Read it first."
    [block] = first.message.provider_state["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"].startswith("replay-sig-")
    if stream:
        assert events.text("reasoning") == "Read it first."

    tool_result = Message(role="tool", tool_call_id="t1", content="file text")
    await provider.complete([*conversation(), first.message, tool_result], TOOLS)
    await provider.aclose()
    assistant = server.requests[1]["body"]["messages"][1]
    assert assistant["role"] == "assistant"
    assert [b["type"] for b in assistant["content"]] == ["thinking", "text", "tool_use"]
    assert assistant["content"][0] == block


@both_formats
@both_modes
async def test_several_tool_calls_in_one_turn(
    scripted_server: StartServer, api_format: ApiFormat, stream: bool
) -> None:
    calls = [
        {"id": "c1", "name": "read", "arguments": {"path": "a.py"}},
        {"id": "c2", "name": "grep", "arguments": {"pattern": "def slug", "path": "."}},
        {"name": "bash", "arguments": {"command": "python -m pytest -q -k 'slug and not slow'"}},
    ]
    server = scripted_server({"turns": [{"content": "Looking.", "tool_calls": calls}]})
    provider = provider_for(server, api_format, stream)
    events = Recorder()
    completion = await provider.complete(conversation(), TOOLS, on_event=events)
    await provider.aclose()
    got = completion.message.tool_calls
    assert [c.name for c in got] == ["read", "grep", "bash"]
    assert got[0].id == "c1" and got[1].id == "c2" and got[2].id
    assert [json.loads(c.arguments) for c in got] == [c["arguments"] for c in calls]
    assert completion.stop_reason == "tool_use" and completion.message.content == "Looking."
    if stream:
        deltas = events.of("tool_call")
        assert {d.index for d in deltas} == {0, 1, 2}
        for index, call in enumerate(got):
            mine = [d for d in deltas if d.index == index]
            assert "".join(d.arguments for d in mine) == call.arguments
            assert len(mine) > 2  # arguments arrived in pieces
            assert mine[0].name == call.name


@both_formats
@both_modes
async def test_malformed_tool_json_passes_through_raw(
    scripted_server: StartServer, api_format: ApiFormat, stream: bool
) -> None:
    raw = '{"path": "a.py", "limit": '
    server = scripted_server({"turns": [{"tool_calls": [{"id": "c1", "name": "read", "arguments": raw}]}]})
    provider = provider_for(server, api_format, stream)
    completion = await provider.complete(conversation(), TOOLS)
    await provider.aclose()
    [call] = completion.message.tool_calls
    assert call.arguments == raw and call.name == "read"
    assert completion.stop_reason == "tool_use"


async def test_anthropic_tool_results_share_one_user_message(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "ok"}]})
    provider = provider_for(server, "anthropic", False)
    assistant = Message(
        role="assistant",
        tool_calls=[
            ToolCall(id="a", name="read", arguments='{"path": "x"}'),
            ToolCall(id="b", name="bash", arguments="{bad"),
        ],
    )
    history = [
        *conversation(),
        assistant,
        Message(role="tool", tool_call_id="a", content="text"),
        Message(role="tool", tool_call_id="b", content="invalid JSON", is_error=True),
    ]
    await provider.complete(history, TOOLS)
    await provider.aclose()
    messages: list[dict[str, Any]] = server.requests[0]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][1]["input"] == {}  # malformed arguments cannot travel as an object
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": "text"},
        {"type": "tool_result", "tool_use_id": "b", "content": "invalid JSON", "is_error": True},
    ]


async def test_request_shape_and_headers(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "a"}, {"content": "b"}]})
    openai = provider_for(
        server, "openai", True, service_tier="priority", max_tokens=1000, thinking="disabled"
    )
    await openai.complete(conversation("one"), TOOLS)
    anthropic = provider_for(server, "anthropic", False, model="some-other-model")
    await anthropic.complete(conversation("two"), TOOLS)
    await openai.aclose()
    await anthropic.aclose()

    first, second = server.requests
    assert first["headers"]["authorization"] == "Bearer test-key"
    body = first["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["service_tier"] == "priority" and body["max_tokens"] == 1000
    assert body["thinking"] == {"type": "disabled"}
    assert body["tools"][0] == {"type": "function", "function": TOOLS[0].model_dump()}
    assert body["messages"][0] == {"role": "system", "content": "You are a coding agent."}

    assert second["headers"]["x-api-key"] == "test-key"
    assert second["headers"]["anthropic-version"] == "2023-06-01"
    body = second["body"]
    assert body["max_tokens"] == 8192  # the generic profile's output cap
    assert "thinking" not in body  # not a model known to take it
    assert body["tools"][0]["input_schema"] == TOOLS[0].parameters


@both_formats
async def test_usage_with_cache_reads(scripted_server: StartServer, api_format: ApiFormat) -> None:
    usage = {"input_tokens": 600_000, "output_tokens": 1000, "cache_read_tokens": 500_000}
    server = scripted_server({"turns": [{"content": "big", "usage": usage}]})
    provider = provider_for(server, api_format, True)
    completion = await provider.complete(conversation(), [])
    await provider.aclose()
    u = completion.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (600_000, 1000, 500_000)
    # Above the long-context threshold: 100K uncached at $0.60, 500K cached at $0.12, 1K out at $2.40.
    assert u.cost_usd == pytest.approx(0.06 + 0.06 + 0.0024)
