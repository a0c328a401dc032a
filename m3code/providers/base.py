"""What the agent loop needs from a model provider, and the settings that make one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel

from m3code.providers.types import ApiFormat, Completion, Message, StreamEvent, ThinkingMode, ToolSpec


class ProviderSettings(BaseModel):
    base_url: str
    api_key: str | None = None
    model: str
    api_format: ApiFormat = "openai"
    thinking: ThinkingMode = "adaptive"
    stream: bool = True
    # Seconds for one request: connect, and the gap between two bytes of a stream.
    timeout: float = 300.0
    max_retries: int = 5
    # Upper bound on a single backoff wait, also when the server's Retry-After asks for longer.
    max_backoff: float = 60.0
    max_tokens: int | None = None
    service_tier: str | None = None


class Provider(Protocol):
    settings: ProviderSettings

    async def complete(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        *,
        on_event: Callable[[StreamEvent], None] | None = None,
    ) -> Completion:
        """Run one assistant turn. `messages` starts with the system message when there is one.

        Streams when `settings.stream` is set, calling `on_event` for each delta (and `Retrying` before a
        retry). Retries 429/5xx/connection loss with backoff, honouring Retry-After; raises ProviderError
        when it gives up. Cancelling the awaiting task cancels the request.
        """
        ...

    async def aclose(self) -> None: ...
