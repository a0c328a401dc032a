"""Model providers: one internal message type, adapters for the OpenAI and Anthropic wire formats."""

from __future__ import annotations

import httpx

from m3code.providers.anthropic import AnthropicProvider
from m3code.providers.base import Provider, ProviderSettings
from m3code.providers.openai import OpenAIProvider
from m3code.providers.profiles import (
    CHINA_ANTHROPIC_BASE_URL,
    CHINA_OPENAI_BASE_URL,
    DEFAULT_ANTHROPIC_BASE_URL,
    DEFAULT_OPENAI_BASE_URL,
    GENERIC_PROFILE,
    PROFILES,
    ModelProfile,
    default_base_url,
    profile_for,
)
from m3code.providers.types import (
    ApiFormat,
    Completion,
    Done,
    Message,
    ProviderError,
    ReasoningDelta,
    Retrying,
    Role,
    StreamEvent,
    TextDelta,
    ThinkingMode,
    ToolCall,
    ToolCallDelta,
    ToolSpec,
    Usage,
)


def make_provider(
    settings: ProviderSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> Provider:
    """The adapter for `settings.api_format`. `transport` is for tests and embedding (e.g. ASGI)."""
    if settings.api_format == "anthropic":
        return AnthropicProvider(settings, transport=transport)
    return OpenAIProvider(settings, transport=transport)


__all__ = [
    "CHINA_ANTHROPIC_BASE_URL",
    "CHINA_OPENAI_BASE_URL",
    "DEFAULT_ANTHROPIC_BASE_URL",
    "DEFAULT_OPENAI_BASE_URL",
    "GENERIC_PROFILE",
    "PROFILES",
    "AnthropicProvider",
    "ApiFormat",
    "Completion",
    "Done",
    "Message",
    "ModelProfile",
    "OpenAIProvider",
    "Provider",
    "ProviderError",
    "ProviderSettings",
    "ReasoningDelta",
    "Retrying",
    "Role",
    "StreamEvent",
    "TextDelta",
    "ThinkingMode",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
    "default_base_url",
    "make_provider",
    "profile_for",
]
