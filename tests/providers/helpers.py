"""Shared bits for the provider suites: settings aimed at a scripted server, and a small conversation."""

from __future__ import annotations

from typing import Any

from m3code.providers import Message, Provider, ProviderSettings, StreamEvent, make_provider
from m3code.providers.types import ApiFormat
from m3code.replay import ScriptedModelServer

FORMATS: list[ApiFormat] = ["openai", "anthropic"]


def settings_for(
    server: ScriptedModelServer, api_format: ApiFormat, stream: bool, **overrides: Any
) -> ProviderSettings:
    base = server.openai_base_url if api_format == "openai" else server.anthropic_base_url
    values: dict[str, Any] = {
        "base_url": base,
        "api_key": "test-key",
        "model": "MiniMax-M3",
        "api_format": api_format,
        "stream": stream,
        "timeout": 5.0,
        "max_retries": 3,
        "max_backoff": 0.02,
    }
    values.update(overrides)
    return ProviderSettings(**values)


def provider_for(
    server: ScriptedModelServer, api_format: ApiFormat, stream: bool, **overrides: Any
) -> Provider:
    return make_provider(settings_for(server, api_format, stream, **overrides))


def conversation(text: str = "Fix the bug.") -> list[Message]:
    return [Message(role="system", content="You are a coding agent."), Message(role="user", content=text)]


class Recorder:
    """Collects stream events; `of(kind)` filters them."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []

    def __call__(self, event: StreamEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]

    def text(self, kind: str) -> str:
        return "".join(e.text for e in self.of(kind))
