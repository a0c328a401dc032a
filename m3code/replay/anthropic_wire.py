"""A scripted turn as an Anthropic messages response, whole or as SSE events."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from m3code.replay.script import ScriptedToolCall, Turn
from m3code.replay.tokens import estimate_usage, pieces


def _tool_use_id(turn_index: int, call_index: int, given: str | None) -> str:
    return given or f"toolu_{turn_index}_{call_index}"


def _signature(reasoning: str) -> str:
    # Stands in for the opaque signature the real API attaches; clients must send it back unchanged.
    return "replay-sig-" + hashlib.sha256(reasoning.encode()).hexdigest()[:32]


def _tool_input(call: ScriptedToolCall) -> Any:
    if isinstance(call.arguments, dict):
        return call.arguments
    try:
        return json.loads(call.arguments)
    except ValueError:
        # Malformed arguments can only travel as a string in a whole (non-streamed) message.
        return call.arguments


def _usage(turn: Turn, request: dict[str, Any]) -> dict[str, int]:
    u = estimate_usage(turn, {"system": request.get("system"), "messages": request.get("messages")})
    # Anthropic counts cache reads apart from input_tokens.
    return {
        "input_tokens": u.input_tokens - u.cache_read_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": 0,
    }


def _stop_reason(turn: Turn) -> str:
    return "tool_use" if turn.tool_calls else "end_turn"


def response(turn: Turn, turn_index: int, request: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if turn.reasoning:
        content.append(
            {"type": "thinking", "thinking": turn.reasoning, "signature": _signature(turn.reasoning)}
        )
    if turn.content:
        content.append({"type": "text", "text": turn.content})
    for i, call in enumerate(turn.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": _tool_use_id(turn_index, i, call.id),
                "name": call.name,
                "input": _tool_input(call),
            }
        )
    return {
        "id": f"msg_replay_{turn_index}",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", ""),
        "content": content,
        "stop_reason": _stop_reason(turn),
        "stop_sequence": None,
        "usage": _usage(turn, request),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def stream_events(turn: Turn, turn_index: int, request: dict[str, Any]) -> list[bytes]:
    """Every SSE event of the streamed answer, `message_stop` last."""
    usage = _usage(turn, request)
    start_usage = {**usage, "output_tokens": 1}
    message = {
        "id": f"msg_replay_{turn_index}",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", ""),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [_event("message_start", {"message": message}), _event("ping", {})]
    index = 0

    def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        nonlocal index
        events.append(_event("content_block_start", {"index": index, "content_block": start}))
        events.extend(_event("content_block_delta", {"index": index, "delta": d}) for d in deltas)
        events.append(_event("content_block_stop", {"index": index}))
        index += 1

    size = turn.chunk_size
    if turn.reasoning:
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(turn.reasoning, size)]
        deltas.append({"type": "signature_delta", "signature": _signature(turn.reasoning)})
        block({"type": "thinking", "thinking": "", "signature": ""}, deltas)
    if turn.content:
        block(
            {"type": "text", "text": ""},
            [{"type": "text_delta", "text": p} for p in pieces(turn.content, size)],
        )
    for i, call in enumerate(turn.tool_calls):
        args = call.arguments_text()
        json_size = max(1, len(args) // 3)
        block(
            {"type": "tool_use", "id": _tool_use_id(turn_index, i, call.id), "name": call.name, "input": {}},
            [{"type": "input_json_delta", "partial_json": p} for p in pieces(args, json_size)],
        )
    events.append(
        _event(
            "message_delta",
            {
                "delta": {"stop_reason": _stop_reason(turn), "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(_event("message_stop", {}))
    return events


def error_body(message: str, kind: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
