"""Provider for OpenAI-compatible chat completions: MiniMax, `m3code serve`, vLLM, SGLang."""

from __future__ import annotations

from typing import Any

from m3code.providers.chat import ChatProvider
from m3code.providers.http import (
    EventSink,
    RetryableError,
    check_payload_error,
    check_status,
    parse_json,
)
from m3code.providers.images import tool_image_caption, with_notes
from m3code.providers.openai_response import (
    REASONING_CONTENT,
    REASONING_DETAILS,
    THINK_TAGS,
    OpenAITurn,
)
from m3code.providers.sse import aiter_sse
from m3code.providers.think_tags import wrap_think
from m3code.providers.types import Completion, ImagePart, Message, ToolSpec


class OpenAIProvider(ChatProvider):
    path = "/chat/completions"

    # --- request ---------------------------------------------------------------------------------

    def request_body(self, messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "model": s.model,
            "messages": self._wire_messages(messages),
            "stream": s.stream,
        }
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        if s.max_tokens:
            body["max_tokens"] = s.max_tokens
        if self.profile.supports_thinking:
            body["thinking"] = {"type": s.thinking}
        if self.profile.reasoning_split:
            body["reasoning_split"] = True
        if s.service_tier:
            body["service_tier"] = s.service_tier
        if s.stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _wire_messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        wire: list[dict[str, Any]] = []
        # A tool message in this format carries text only, so images a tool returned travel in a user
        # message right after the tool messages of that turn (not between them: every tool_call_id must
        # follow its assistant message before anything else is said).
        tool_images: list[dict[str, Any]] = []
        for m in messages:
            if m.role != "tool" and tool_images:
                wire.append({"role": "user", "content": tool_images})
                tool_images = []
            if m.role == "tool" and m.images and self.profile.supports_images:
                wire.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
                tool_images.append({"type": "text", "text": tool_image_caption(m.tool_call_id)})
                tool_images += [_image_part(image) for image in m.images]
            else:
                wire.append(self._wire_message(m))
        if tool_images:
            wire.append({"role": "user", "content": tool_images})
        return wire

    def _wire_message(self, m: Message) -> dict[str, Any]:
        if m.images and not self.profile.supports_images:
            m = m.model_copy(update={"content": with_notes(m.content, m.images, self.settings.model), "images": []})
        if m.role == "tool":
            return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
        if m.role != "assistant":
            if m.images:
                text = [{"type": "text", "text": m.content}] if m.content else []
                return {"role": m.role, "content": [*text, *(_image_part(image) for image in m.images)]}
            return {"role": m.role, "content": m.content}
        out: dict[str, Any] = {"role": "assistant", "content": m.content}
        fmt = m.provider_state.get("reasoning_format")
        if m.reasoning:
            # MiniMax needs the whole turn back, reasoning in the shape it was sent.
            if fmt == THINK_TAGS:
                out["content"] = wrap_think(m.reasoning, m.content)
            elif fmt == REASONING_DETAILS:
                out["reasoning_details"] = m.provider_state.get("reasoning_details") or []
            elif fmt == REASONING_CONTENT:
                out["reasoning_content"] = m.reasoning
            elif self.profile.reasoning_split:
                # Reasoning from elsewhere (another format, a resumed log): the split form is plain text.
                out["reasoning_details"] = [{"type": "reasoning.text", "text": m.reasoning}]
        if m.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]
        return out

    def _headers(self) -> dict[str, str]:
        if self.settings.api_key:
            return {"authorization": f"Bearer {self.settings.api_key}"}
        return {}

    # --- one attempt -----------------------------------------------------------------------------

    def _from_json(self, data: Any, on_event: EventSink) -> Completion:
        check_payload_error(data, self.settings, self.url)
        if not isinstance(data, dict) or not data.get("choices"):
            raise RetryableError(f"response from {self.url} has no choices: {str(data)[:200]}", kind="stream")
        turn = OpenAITurn(on_event)
        turn.add_response(data)
        return turn.completion()

    async def _stream_once(self, body: dict[str, Any], on_event: EventSink) -> Completion:
        turn = OpenAITurn(on_event)
        finished = False
        async with self._client.stream("POST", self.url, json=body, headers=self._headers()) as response:
            if not 200 <= response.status_code < 300:
                check_status(response, await response.aread(), self.settings, self.url)
            if "event-stream" not in response.headers.get("content-type", "text/event-stream"):
                # A server that ignored `stream` (or answered with an error body) sent plain JSON.
                return self._from_json(parse_json(await response.aread(), self.url), on_event)
            async for event in aiter_sse(response):
                if event.is_done:
                    finished = True
                    break
                chunk = parse_json(event.data, self.url)
                check_payload_error(chunk, self.settings, self.url)
                if isinstance(chunk, dict):
                    turn.add_chunk(chunk)
        # A finish_reason means all content arrived; only the usage chunk may be missing then.
        if not finished and turn.finish_reason is None:
            raise RetryableError(f"stream from {self.url} ended before the turn was complete", kind="stream")
        return turn.completion()


def _image_part(image: ImagePart) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image.data_url()}}
