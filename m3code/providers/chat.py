"""What the two wire-format adapters share: one HTTP client, the retry loop, and costing each turn."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import httpx

from m3code.providers.base import ProviderSettings
from m3code.providers.http import EventSink, call_with_retries, check_status, make_client, parse_json
from m3code.providers.profiles import profile_for
from m3code.providers.types import Completion, Message, StreamEvent, ToolSpec


class ChatProvider(ABC):
    # Appended to the base URL: the one endpoint the adapter talks to.
    path: str

    def __init__(self, settings: ProviderSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.profile = profile_for(settings.model)
        self.url = settings.base_url.rstrip("/") + self.path
        self._client = make_client(settings, transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        *,
        on_event: Callable[[StreamEvent], None] | None = None,
    ) -> Completion:
        body = self.request_body(messages, tools)

        async def attempt() -> Completion:
            if self.settings.stream:
                return await self._stream_once(body, on_event)
            return await self._post_once(body)

        completion = await call_with_retries(self.settings, self.url, attempt, on_event)
        completion.usage.cost_usd = self.profile.cost(completion.usage, self.settings.service_tier)
        return completion

    @abstractmethod
    def request_body(self, messages: list[Message], tools: list[ToolSpec]) -> dict[str, Any]: ...

    @abstractmethod
    async def _stream_once(self, body: dict[str, Any], on_event: Callable[[StreamEvent], None] | None,
                           ) -> Completion: ...

    async def _post_once(self, body: dict[str, Any]) -> Completion:
        response = await self._client.post(self.url, json=body, headers=self._headers())
        check_status(response, response.content, self.settings, self.url)
        return self._from_json(parse_json(response.content, self.url), None)

    @abstractmethod
    def _headers(self) -> dict[str, str]: ...

    @abstractmethod
    def _from_json(self, data: Any, on_event: EventSink) -> Completion:
        """A whole (non-streamed) JSON response as a Completion; deltas go to `on_event` if given."""
