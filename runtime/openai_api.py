"""OpenAI chat-completions wire format: request validation, response and stream-chunk shapes, error bodies."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from runtime.chat import THINKING_MODES
from runtime.markup import Delta, ToolCall
from runtime.sampling import SamplingParams


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False
    thinking_mode: str = "adaptive"
    extra: dict[str, Any] = field(default_factory=dict)


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ApiError(400, f"{key} must be a number in [{low}, {high}]", param=key)
    return float(value)


def _integer(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{key} must be an integer", param=key)
    return value


def parse_chat_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array", param="messages")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ApiError(400, "tools must be an array", param="tools")
    if body.get("tool_choice") == "none":
        tools = None
    max_tokens = _integer(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _integer(body, "max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, "max_completion_tokens must be at least 1", param="max_completion_tokens")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise ApiError(400, "stop must be a string or an array of strings", param="stop")
    top_k = _integer(body, "top_k")
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-9, 1.0),
        top_k=top_k if top_k is not None else 0,
        seed=_integer(body, "seed"),
        stop=[s for s in stop or [] if s],
    )
    # Thinking: MiniMax's `thinking: {"type": ...}`, or vLLM/SGLang's chat_template_kwargs.thinking_mode.
    mode = "adaptive"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") is not None:
        mode = thinking["type"]
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and kwargs.get("thinking_mode") is not None:
        mode = kwargs["thinking_mode"]
    if mode not in THINKING_MODES:
        raise ApiError(400, f"thinking type must be one of {', '.join(THINKING_MODES)}", param="thinking")
    options = body.get("stream_options")
    return ChatRequest(
        messages=messages,
        tools=tools,
        params=params,
        stream=bool(body.get("stream", False)),
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        thinking_mode=mode,
    )


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def finish_reason(engine_reason: str | None, tool_calls: bool) -> str:
    if tool_calls and engine_reason == "stop":
        return "tool_calls"
    return "length" if engine_reason == "length" else "stop"


def completion_body(
    cid: str, model: str, parsed: Delta, reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": parsed.content or None}
    if parsed.reasoning:
        message["reasoning_content"] = parsed.reasoning
    if parsed.tool_calls:
        message["tool_calls"] = [call.to_openai() for call in parsed.tool_calls]
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason, "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chunk_body(cid: str, model: str, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
    }


def delta_messages(parsed: Delta, first_tool_index: int) -> list[dict[str, Any]]:
    """A parsed piece as stream deltas: reasoning, then content, then each completed tool call."""
    out: list[dict[str, Any]] = []
    if parsed.reasoning:
        out.append({"reasoning_content": parsed.reasoning})
    if parsed.content:
        out.append({"content": parsed.content})
    for i, call in enumerate(parsed.tool_calls):
        out.append({"tool_calls": [call.to_openai(first_tool_index + i)]})
    return out


__all__ = ["ApiError", "ChatRequest", "ToolCall", "parse_chat_request"]
