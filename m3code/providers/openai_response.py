"""Assemble one assistant turn from OpenAI chat-completions JSON: a whole response or stream chunks."""

from __future__ import annotations

import json
import uuid
from typing import Any

from m3code.providers.http import EventSink, emit
from m3code.providers.think_tags import ThinkTagSplitter
from m3code.providers.types import (
    Completion,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

FINISH_REASONS = {
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "stop": "end_turn",
    "length": "max_tokens",
}

# provider_state["reasoning_format"]: how reasoning reached us, hence how it must go back.
THINK_TAGS = "think_tags"
REASONING_DETAILS = "reasoning_details"
REASONING_CONTENT = "reasoning_content"


def usage_from_openai(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    details = data.get("prompt_tokens_details") or {}
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0),
        output_tokens=int(data.get("completion_tokens") or 0),
        cache_read_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


class OpenAITurn:
    """Collects content, reasoning, tool calls, finish reason and usage, emitting deltas as it goes."""

    def __init__(self, on_event: EventSink = None) -> None:
        self._on_event = on_event
        self._splitter = ThinkTagSplitter()
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._details: dict[int, dict[str, Any]] = {}
        self._saw_reasoning_field = False
        self._tools: dict[int, dict[str, str]] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    # --- input -----------------------------------------------------------------------------------

    def add_response(self, data: dict[str, Any]) -> None:
        """A whole (non-streamed) response."""
        choice = (data.get("choices") or [{}])[0]
        self._add_part(choice.get("message") or {})
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if data.get("usage"):
            self.usage = usage_from_openai(data["usage"])

    def add_chunk(self, data: dict[str, Any]) -> None:
        """One streamed `chat.completion.chunk`."""
        for choice in data.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            self._add_part(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if data.get("usage"):
            self.usage = usage_from_openai(data["usage"])

    def _add_part(self, part: dict[str, Any]) -> None:
        # Reasoning first: within one chunk it precedes the answer.
        for detail_index, detail in enumerate(part.get("reasoning_details") or []):
            if isinstance(detail, dict):
                self._add_reasoning_detail(detail_index, detail)
        # vLLM/SGLang: `reasoning_content`, or `reasoning` in newer vLLM (some versions send both, equal).
        value = part.get("reasoning_content") or part.get("reasoning")
        if isinstance(value, str) and value:
            self._saw_reasoning_field = True
            self._add_reasoning(value)
        content = part.get("content")
        if isinstance(content, str) and content:
            for kind, piece in self._splitter.feed(content):
                self._add_piece(kind, piece)
        for call in part.get("tool_calls") or []:
            if isinstance(call, dict):
                self._add_tool_call(call)

    def _add_piece(self, kind: str, piece: str) -> None:
        if kind == "reasoning":
            self._add_reasoning(piece)
        else:
            self._text.append(piece)
            emit(self._on_event, TextDelta(text=piece))

    def _add_reasoning(self, text: str) -> None:
        self._reasoning.append(text)
        emit(self._on_event, ReasoningDelta(text=text))

    def _add_reasoning_detail(self, position: int, detail: dict[str, Any]) -> None:
        index = detail.get("index", position)
        index = index if isinstance(index, int) else position
        merged = self._details.get(index)
        if merged is None:
            self._details[index] = dict(detail)
        else:
            # Streamed pieces of one detail: text-like fields grow, the rest is fixed per detail.
            for key, value in detail.items():
                if key in ("text", "summary") and isinstance(value, str):
                    merged[key] = str(merged.get(key) or "") + value
                elif key not in merged or merged[key] in (None, ""):
                    merged[key] = value
        text = detail.get("text") or detail.get("summary")
        if isinstance(text, str) and text:
            self._add_reasoning(text)

    def _add_tool_call(self, call: dict[str, Any]) -> None:
        index = call.get("index")
        if not isinstance(index, int):
            # Servers that omit the index send each call whole, or repeat its id.
            index = next(
                (i for i, t in self._tools.items() if call.get("id") and t["id"] == call["id"]), None
            )
            if index is None:
                index = max(self._tools, default=-1) + 1
        entry = self._tools.setdefault(index, {"id": "", "name": "", "arguments": ""})
        function = call.get("function") or {}
        call_id = call.get("id") or None
        name = function.get("name") or None
        args = function.get("arguments")
        if args is not None and not isinstance(args, str):
            args = json.dumps(args)
        if call_id and not entry["id"]:
            entry["id"] = call_id
        if name and not entry["name"]:
            entry["name"] = name
        entry["arguments"] += args or ""
        emit(self._on_event, ToolCallDelta(index=index, id=call_id, name=name, arguments=args or ""))

    # --- output ----------------------------------------------------------------------------------

    def finish_text(self) -> None:
        """Release whatever the tag splitter still holds (end of content)."""
        for kind, piece in self._splitter.flush():
            self._add_piece(kind, piece)

    def completion(self) -> Completion:
        self.finish_text()
        calls = [
            ToolCall(
                id=t["id"] or f"call_{uuid.uuid4().hex[:24]}",
                name=t["name"],
                arguments=t["arguments"] or "{}",
            )
            for _, t in sorted(self._tools.items())
        ]
        state: dict[str, Any] = {}
        if self._details:
            state = {"reasoning_format": REASONING_DETAILS, "reasoning_details": self._reasoning_details()}
        elif self._splitter.saw_tags:
            state = {"reasoning_format": THINK_TAGS}
        elif self._saw_reasoning_field:
            state = {"reasoning_format": REASONING_CONTENT}
        message = Message(
            role="assistant",
            content="".join(self._text),
            reasoning="".join(self._reasoning).strip(),
            tool_calls=calls,
            provider_state=state,
        )
        stop = FINISH_REASONS.get(self.finish_reason or "stop", self.finish_reason or "end_turn")
        # Some servers say "stop" even when the turn ends in tool calls.
        if calls and stop == "end_turn":
            stop = "tool_use"
        return Completion(message=message, usage=self.usage or Usage(), stop_reason=stop)

    def _reasoning_details(self) -> list[dict[str, Any]]:
        return [self._details[i] for i in sorted(self._details)]
