"""The pieces the adapters are built from: <think> splitting and SSE parsing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m3code.providers import Message, OpenAIProvider, ProviderSettings
from m3code.providers.openai_response import OpenAITurn
from m3code.providers.sse import SSEEvent, aiter_sse
from m3code.providers.think_tags import ThinkTagSplitter, split_think

RAW = "<think>\nLet me look.\n</think>\n\nThe answer is <b>42</b>."


def _run(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkTagSplitter()
    pieces = [p for c in chunks for p in splitter.feed(c)] + splitter.flush()
    text = "".join(t for kind, t in pieces if kind == "text")
    reasoning = "".join(t for kind, t in pieces if kind == "reasoning")
    return text, reasoning


@pytest.mark.parametrize("cut", range(1, len(RAW)))
def test_think_tags_split_at_every_position(cut: int) -> None:
    text, reasoning = _run([RAW[:cut], RAW[cut:]])
    assert text == "The answer is <b>42</b>."
    assert reasoning.strip() == "Let me look."


def test_think_tags_one_character_at_a_time() -> None:
    text, reasoning = _run(list(RAW))
    assert text == "The answer is <b>42</b>." and reasoning.strip() == "Let me look."


def test_no_tags_is_all_text_and_a_lone_angle_bracket_is_not_held_forever() -> None:
    assert _run(["a < b", " and <thi"]) == ("a < b and <thi", "")
    assert split_think("plain") == ("plain", "", False)


async def _events(payload: bytes) -> list[SSEEvent]:
    response = httpx.Response(200, stream=httpx.ByteStream(payload))
    return [e async for e in aiter_sse(response)]


async def test_sse_data_events_comments_and_done() -> None:
    payload = (
        b": keep-alive\n\n"
        b'data: {"a": 1}\n\n'
        b'event: message_stop\r\ndata: {"type": "message_stop"}\r\n\r\n'
        b"data: first line\ndata: second line\n\n"
        b"id: 7\ndata:no-space\n\n"
        b"data: [DONE]\n\n"
    )
    events = await _events(payload)
    assert [e.data for e in events] == [
        '{"a": 1}',
        '{"type": "message_stop"}',
        "first line\nsecond line",
        "no-space",
        "[DONE]",
    ]
    assert events[1].event == "message_stop" and events[0].event == "message"
    assert events[3].id == "7"
    assert events[-1].is_done and not events[0].is_done


async def test_sse_event_without_trailing_blank_line_is_still_delivered() -> None:
    events = await _events(b"data: tail")
    assert [e.data for e in events] == ["tail"]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_vllm_reasoning_content_and_unindexed_tool_calls() -> None:
    turn = OpenAITurn()
    turn.add_chunk(_chunk({"reasoning_content": "Plan.", "reasoning": "Plan."}))
    turn.add_chunk(_chunk({"content": "Go."}))
    turn.add_chunk(
        _chunk({"tool_calls": [{"id": "x", "function": {"name": "read", "arguments": {"path": "a"}}}]})
    )
    turn.add_chunk(_chunk({}, "stop"))
    turn.add_chunk({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3}})
    completion = turn.completion()
    assert completion.message.reasoning == "Plan." and completion.message.content == "Go."
    assert completion.message.provider_state == {"reasoning_format": "reasoning_content"}
    assert completion.message.tool_calls[0].arguments == '{"path": "a"}'
    assert completion.stop_reason == "tool_use"  # "stop" with tool calls still means tools to run
    assert completion.usage.input_tokens == 10

    provider = OpenAIProvider(ProviderSettings(base_url="http://unused", model="served-model"))
    body = provider.request_body([Message(role="user", content="hi"), completion.message], [])
    assert body["messages"][1]["reasoning_content"] == "Plan."
    assert body["messages"][1]["content"] == "Go."
