"""Assemble one assistant turn from Anthropic messages JSON: a whole message or stream events."""

from __future__ import annotations

import json
from typing import Any

from m3code.providers.http import EventSink, emit
from m3code.providers.types import (
    Completion,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

STOP_REASONS = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
}
THINKING_TYPES = ("thinking", "redacted_thinking")


def usage_from_anthropic(raw: dict[str, Any]) -> Usage:
    # Anthropic counts cached prompt tokens apart from input_tokens; ours are part of the prompt size.
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


class AnthropicTurn:
    def __init__(self, on_event: EventSink = None) -> None:
        self._on_event = on_event
        self._blocks: dict[int, dict[str, Any]] = {}
        # Content-block index -> position among tool calls (what ToolCallDelta.index means).
        self._tool_slots: dict[int, int] = {}
        self._raw_usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.finished = False

    # --- input -----------------------------------------------------------------------------------

    def add_message(self, data: dict[str, Any]) -> None:
        """A whole (non-streamed) message."""
        for index, block in enumerate(data.get("content") or []):
            if isinstance(block, dict):
                self._start_block(index, block)
        self.stop_reason = data.get("stop_reason")
        self._merge_usage(data.get("usage"))
        self.finished = True

    def add_event(self, data: dict[str, Any]) -> None:
        """One streamed event (errors are checked by the caller first)."""
        kind = data.get("type")
        if kind == "message_start":
            self._merge_usage((data.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            self._start_block(
                int(data.get("index", len(self._blocks))), dict(data.get("content_block") or {})
            )
        elif kind == "content_block_delta":
            self._add_delta(int(data.get("index", 0)), data.get("delta") or {})
        elif kind == "message_delta":
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
            self._merge_usage(data.get("usage"))
        elif kind == "message_stop":
            self.finished = True
        # ping, content_block_stop and unknown events carry nothing we keep.

    def _merge_usage(self, raw: Any) -> None:
        if isinstance(raw, dict):
            self._raw_usage.update({k: v for k, v in raw.items() if v is not None})

    def _start_block(self, index: int, block: dict[str, Any]) -> None:
        self._blocks[index] = block
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            emit(self._on_event, TextDelta(text=block["text"]))
        elif kind == "thinking" and block.get("thinking"):
            emit(self._on_event, ReasoningDelta(text=block["thinking"]))
        elif kind == "tool_use":
            slot = self._tool_slots[index] = len(self._tool_slots)
            # A whole message carries `input` as an object; a stream builds it from JSON pieces.
            raw_input = block.get("input")
            block["arguments"] = raw_input if isinstance(raw_input, str) else ""
            if isinstance(raw_input, dict) and raw_input:
                block["arguments"] = json.dumps(raw_input)
            emit(
                self._on_event,
                ToolCallDelta(
                    index=slot, id=block.get("id"), name=block.get("name"), arguments=block["arguments"]
                ),
            )

    def _add_delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
            emit(self._on_event, TextDelta(text=delta.get("text", "")))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            emit(self._on_event, ReasoningDelta(text=delta.get("thinking", "")))
        elif kind == "signature_delta":
            block["signature"] = block.get("signature", "") + delta.get("signature", "")
        elif kind == "input_json_delta":
            piece = delta.get("partial_json", "")
            block["arguments"] = block.get("arguments", "") + piece
            slot = self._tool_slots.get(index, 0)
            emit(self._on_event, ToolCallDelta(index=slot, arguments=piece))

    # --- output ----------------------------------------------------------------------------------

    def completion(self) -> Completion:
        blocks = [self._blocks[i] for i in sorted(self._blocks)]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        reasoning = "".join(b.get("thinking", "") for b in blocks if b.get("type") == "thinking")
        calls = [
            ToolCall(id=b.get("id", ""), name=b.get("name", ""), arguments=b.get("arguments") or "{}")
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        # Thinking blocks go back verbatim (signature included) or the API rejects the history.
        thinking = [_thinking_block(b) for b in blocks if b.get("type") in THINKING_TYPES]
        state: dict[str, Any] = {"thinking_blocks": thinking} if thinking else {}
        message = Message(
            role="assistant",
            content=text,
            reasoning=reasoning.strip(),
            tool_calls=calls,
            provider_state=state,
        )
        stop = STOP_REASONS.get(self.stop_reason or "end_turn", self.stop_reason or "end_turn")
        if calls and stop == "end_turn":
            stop = "tool_use"
        return Completion(message=message, usage=usage_from_anthropic(self._raw_usage), stop_reason=stop)


def _thinking_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data", "")}
    return {
        "type": "thinking",
        "thinking": block.get("thinking", ""),
        "signature": block.get("signature", ""),
    }
