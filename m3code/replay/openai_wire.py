"""A scripted turn as an OpenAI chat-completions response, whole or as SSE chunks (MiniMax flavour)."""

from __future__ import annotations

import json
import time
from typing import Any

from m3code.replay.script import Turn
from m3code.replay.tokens import estimate_usage, pieces


def _tool_call_id(turn_index: int, call_index: int, given: str | None) -> str:
    return given or f"call_{turn_index}_{call_index}"


def _think_content(turn: Turn) -> str:
    if not turn.reasoning:
        return turn.content
    return f"<think>\n{turn.reasoning}\n</think>\n\n{turn.content}"


def _usage(turn: Turn, request: dict[str, Any]) -> dict[str, Any]:
    u = estimate_usage(turn, request.get("messages"))
    out: dict[str, Any] = {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
    }
    if u.cache_read_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": u.cache_read_tokens}
    return out


def _finish_reason(turn: Turn) -> str:
    return "tool_calls" if turn.tool_calls else "stop"


def _reasoning_detail(text: str) -> dict[str, Any]:
    return {
        "type": "reasoning.text",
        "id": "reasoning-text-1",
        "format": "MiniMax-response-v1",
        "index": 0,
        "text": text,
    }


def response(turn: Turn, turn_index: int, request: dict[str, Any]) -> dict[str, Any]:
    split = bool(request.get("reasoning_split"))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.content if split else _think_content(turn),
    }
    if split and turn.reasoning:
        message["reasoning_details"] = [_reasoning_detail(turn.reasoning)]
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": _tool_call_id(turn_index, i, c.id),
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_text()},
            }
            for i, c in enumerate(turn.tool_calls)
        ]
    return {
        "id": f"chatcmpl-replay-{turn_index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": _finish_reason(turn)}],
        "usage": _usage(turn, request),
    }


def stream_events(turn: Turn, turn_index: int, request: dict[str, Any]) -> list[bytes]:
    """Every SSE event of the streamed answer, `data: [DONE]` last."""
    split = bool(request.get("reasoning_split"))
    created = int(time.time())
    base = {
        "id": f"chatcmpl-replay-{turn_index}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": request.get("model", ""),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""})]
    if split:
        chunks += [
            chunk({"reasoning_details": [_reasoning_detail(p)]})
            for p in pieces(turn.reasoning, turn.chunk_size)
        ]
        chunks += [chunk({"content": p}) for p in pieces(turn.content, turn.chunk_size)]
    else:
        chunks += [chunk({"content": p}) for p in pieces(_think_content(turn), turn.chunk_size)]
    for i, call in enumerate(turn.tool_calls):
        head = {
            "index": i,
            "id": _tool_call_id(turn_index, i, call.id),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [head]}))
        # Arguments in a few pieces, as real servers stream them.
        size = max(1, len(call.arguments_text()) // 3)
        chunks += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
            for p in pieces(call.arguments_text(), size)
        ]
    chunks.append(chunk({}, _finish_reason(turn)))
    if (request.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "choices": [], "usage": _usage(turn, request)})
    events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]
    events.append(b"data: [DONE]\n\n")
    return events


def error_body(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": kind}}
