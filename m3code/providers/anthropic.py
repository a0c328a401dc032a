"""Provider for Anthropic-compatible messages APIs (MiniMax's `/anthropic` endpoint among them)."""

from __future__ import annotations

import json
from typing import Any

from m3code.providers.anthropic_response import AnthropicTurn
from m3code.providers.chat import ChatProvider
from m3code.providers.http import (
    EventSink,
    RetryableError,
    check_payload_error,
    check_status,
    parse_json,
)
from m3code.providers.images import with_notes
from m3code.providers.sse import aiter_sse
from m3code.providers.types import Completion, Message, ToolSpec

ANTHROPIC_VERSION = "2023-06-01"
# Thinking budget when thinking is "enabled"; the API wants 1024 <= budget < max_tokens.
THINKING_BUDGET = 8192
MIN_THINKING_BUDGET = 1024


class AnthropicProvider(ChatProvider):
    path = "/v1/messages"

    # --- request ---------------------------------------------------------------------------------

    def request_body(self, messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
        s = self.settings
        max_tokens = s.max_tokens or self.profile.max_output_tokens
        text_only = None if self.profile.supports_images else s.model
        body: dict[str, Any] = {
            "model": s.model,
            "max_tokens": max_tokens,
            "messages": _wire_messages(messages, text_only),
            "stream": s.stream,
        }
        system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
            ]
        if self.profile.supports_thinking:
            thinking: dict[str, Any] = {"type": s.thinking}
            if s.thinking == "enabled":
                budget = min(THINKING_BUDGET, max_tokens - MIN_THINKING_BUDGET)
                if budget >= MIN_THINKING_BUDGET:
                    thinking["budget_tokens"] = budget
            body["thinking"] = thinking
        if s.service_tier:
            body["service_tier"] = s.service_tier
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self.settings.api_key:
            # MiniMax takes either header; Anthropic proper wants x-api-key.
            headers["x-api-key"] = self.settings.api_key
            headers["authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    # --- one attempt -----------------------------------------------------------------------------

    def _from_json(self, data: Any, on_event: EventSink) -> Completion:
        check_payload_error(data, self.settings, self.url)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise RetryableError(f"response from {self.url} has no content: {str(data)[:200]}", kind="stream")
        turn = AnthropicTurn(on_event)
        turn.add_message(data)
        return turn.completion()

    async def _stream_once(self, body: dict[str, Any], on_event: EventSink) -> Completion:
        turn = AnthropicTurn(on_event)
        async with self._client.stream("POST", self.url, json=body, headers=self._headers()) as response:
            if not 200 <= response.status_code < 300:
                check_status(response, await response.aread(), self.settings, self.url)
            if "event-stream" not in response.headers.get("content-type", "text/event-stream"):
                return self._from_json(parse_json(await response.aread(), self.url), on_event)
            async for event in aiter_sse(response):
                data = parse_json(event.data, self.url)
                if not isinstance(data, dict):
                    continue
                data.setdefault("type", event.event)
                check_payload_error(data, self.settings, self.url)
                turn.add_event(data)
                if turn.finished:
                    break
        # message_delta carries the stop reason after the last content block: past it, nothing is lost.
        if not turn.finished and turn.stop_reason is None:
            raise RetryableError(f"stream from {self.url} ended before message_stop", kind="stream")
        return turn.completion()


def _wire_messages(messages: list[Message], text_only: str | None = None) -> list[dict[str, Any]]:
    """Our messages as Anthropic turns: system lifted out, tool results as user blocks, same-role runs
    merged (the API wants user and assistant to alternate).

    Images go as image blocks, in the user message or inside the tool_result; with `text_only` (the name
    of a model that takes no images) each becomes a note instead.
    """
    wire: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if wire and wire[-1]["role"] == role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": role, "content": blocks})

    for m in messages:
        if m.role == "system":
            continue
        if m.images and text_only is not None:
            m = m.model_copy(update={"content": with_notes(m.content, m.images, text_only), "images": []})
        if m.role == "user":
            push("user", _text_and_images(m))
        elif m.role == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id or "",
                # tool_result content may hold image blocks, so a tool's image stays with its result.
                "content": _text_and_images(m) if m.images else m.content,
            }
            if m.is_error:
                result["is_error"] = True
            push("user", [result])
        else:
            blocks = list(m.provider_state.get("thinking_blocks") or [])
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            for call in m.tool_calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": _tool_input(call.arguments),
                    }
                )
            push("assistant", blocks)
    return wire


def _text_and_images(m: Message) -> list[dict[str, Any]]:
    # The API refuses empty text blocks, so a message without text is its images alone.
    blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
    for image in m.images:
        blocks.append(
            {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.data}}
        )
    return blocks


def _tool_input(arguments: str) -> dict[str, Any]:
    # The API needs an object. Arguments that were not one were already reported to the model as a
    # tool error, so an empty object keeps the history valid without hiding anything.
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
