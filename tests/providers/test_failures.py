"""Failure modes over real HTTP: rate limits, server errors, cut streams, bad keys, dead endpoints,
cancellation."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from m3code.providers import ProviderError, ProviderSettings, StreamEvent, make_provider
from m3code.providers.http import retry_after_seconds
from m3code.providers.types import ApiFormat
from m3code.replay import ScriptedModelServer
from tests.providers.helpers import FORMATS, Recorder, conversation, provider_for

StartServer = Callable[..., ScriptedModelServer]
both_formats = pytest.mark.parametrize("api_format", FORMATS)
both_modes = pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])


@both_formats
async def test_429_waits_as_long_as_retry_after_says(
    scripted_server: StartServer, api_format: ApiFormat
) -> None:
    server = scripted_server({"turns": [{"content": "ok", "faults": [{"status": 429, "retry_after": 0.3}]}]})
    provider = provider_for(server, api_format, True, max_backoff=1.0)
    events = Recorder()
    started = time.monotonic()
    completion = await provider.complete(conversation(), [], on_event=events)
    elapsed = time.monotonic() - started
    await provider.aclose()
    assert completion.message.content == "ok"
    [retrying] = events.of("retrying")
    assert retrying.attempt == 1 and retrying.delay == pytest.approx(0.3)
    assert "429" in retrying.reason
    assert elapsed >= 0.3
    assert [r["attempt"] for r in server.requests] == [0, 1]


def test_retry_after_forms() -> None:
    assert retry_after_seconds(httpx.Headers({"retry-after": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_seconds(httpx.Headers({"retry-after": future})) or 0) <= 30
    assert retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after_seconds(httpx.Headers({})) is None


@both_formats
@both_modes
async def test_500_then_success(scripted_server: StartServer, api_format: ApiFormat, stream: bool) -> None:
    server = scripted_server(
        {"turns": [{"content": "recovered", "faults": [{"status": 500}, {"status": 529}]}]}
    )
    provider = provider_for(server, api_format, stream)
    events = Recorder()
    completion = await provider.complete(conversation(), [], on_event=events)
    await provider.aclose()
    assert completion.message.content == "recovered"
    assert [e.attempt for e in events.of("retrying")] == [1, 2]
    assert len(server.requests) == 3


@both_formats
@pytest.mark.parametrize("clean_close", [False, True], ids=["dropped", "eof"])
async def test_cut_stream_is_retried_whole(
    scripted_server: StartServer, api_format: ApiFormat, clean_close: bool
) -> None:
    turn = {
        "content": "The whole answer.",
        "tool_calls": [{"id": "c1", "name": "read", "arguments": {"path": "a.py"}}],
        "faults": [{"cut_after": 4, "clean_close": clean_close}],
    }
    server = scripted_server({"turns": [turn]})
    provider = provider_for(server, api_format, True)
    events = Recorder()
    completion = await provider.complete(conversation(), [], on_event=events)
    await provider.aclose()
    assert completion.message.content == "The whole answer."
    assert completion.message.tool_calls[0].arguments == '{"path": "a.py"}'
    [retrying] = events.of("retrying")
    assert "cut" in retrying.reason or "ended before" in retrying.reason
    # Deltas before the Retrying event belong to the void attempt; after it, the turn arrives whole.
    after = events.events[events.events.index(retrying) + 1 :]
    assert "".join(e.text for e in after if e.kind == "text") == "The whole answer."


@both_formats
async def test_cut_whole_response_is_retried(scripted_server: StartServer, api_format: ApiFormat) -> None:
    server = scripted_server(
        {"turns": [{"content": "whole", "faults": [{"cut_after": 1}, {"cut_after": 1, "clean_close": True}]}]}
    )
    provider = provider_for(server, api_format, False)
    events = Recorder()
    completion = await provider.complete(conversation(), [], on_event=events)
    await provider.aclose()
    assert completion.message.content == "whole"
    assert len(events.of("retrying")) == 2


@both_formats
async def test_retries_exhausted_gives_a_clear_error(
    scripted_server: StartServer, api_format: ApiFormat
) -> None:
    server = scripted_server({"turns": [{"content": "never", "faults": [{"status": 503}] * 5}]})
    provider = provider_for(server, api_format, True, max_retries=2)
    events = Recorder()
    with pytest.raises(ProviderError) as info:
        await provider.complete(conversation(), [], on_event=events)
    await provider.aclose()
    message = str(info.value)
    assert "after 3 attempts" in message and "HTTP 503" in message
    assert server.url in message and "scripted fault" in message
    assert info.value.status == 503 and info.value.retryable
    assert len(server.requests) == 3 and len(events.of("retrying")) == 2


@both_formats
async def test_401_fails_at_once_and_names_the_key(
    scripted_server: StartServer, api_format: ApiFormat
) -> None:
    server = scripted_server({"turns": [{"content": "secret"}]}, api_key="right-key")
    provider = provider_for(server, api_format, True, api_key="wrong-key")
    with pytest.raises(ProviderError) as info:
        await provider.complete(conversation(), [])
    await provider.aclose()
    message = str(info.value)
    assert "MINIMAX_API_KEY" in message and "M3CODE_API_KEY" in message
    assert server.url in message and info.value.status == 401
    assert len(server.requests) == 1  # no retries
    # The right key works, by either header.
    ok = provider_for(server, api_format, False, api_key="right-key")
    assert (await ok.complete(conversation(), [])).message.content == "secret"
    await ok.aclose()


@both_formats
async def test_400_fails_at_once_with_the_server_message(
    scripted_server: StartServer, api_format: ApiFormat
) -> None:
    body = json.dumps({"error": {"message": "tools[0].name is invalid", "type": "invalid_request_error"}})
    server = scripted_server({"turns": [{"content": "x", "faults": [{"status": 400, "body": body}]}]})
    provider = provider_for(server, api_format, True)
    with pytest.raises(ProviderError) as info:
        await provider.complete(conversation(), [])
    await provider.aclose()
    assert "tools[0].name is invalid" in str(info.value) and "HTTP 400" in str(info.value)
    assert len(server.requests) == 1


async def test_minimax_error_in_a_200_body(scripted_server: StartServer) -> None:
    body = json.dumps({"base_resp": {"status_code": 1004, "status_msg": "login fail"}})
    server = scripted_server({"turns": [{"content": "x", "faults": [{"status": 200, "body": body}]}]})
    provider = provider_for(server, "openai", True)
    with pytest.raises(ProviderError, match=r"login fail.*MINIMAX_API_KEY"):
        await provider.complete(conversation(), [])
    await provider.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@both_formats
async def test_endpoint_down_fails_after_retries(api_format: ApiFormat) -> None:
    base = f"http://127.0.0.1:{_closed_port()}"
    settings = ProviderSettings(
        base_url=base + ("/v1" if api_format == "openai" else "/anthropic"),
        model="MiniMax-M3",
        api_format=api_format,
        max_retries=2,
        max_backoff=0.01,
    )
    provider = make_provider(settings)
    events = Recorder()
    with pytest.raises(ProviderError) as info:
        await provider.complete(conversation(), [], on_event=events)
    await provider.aclose()
    assert "cannot reach" in str(info.value) and base in str(info.value)
    assert "running and reachable" in str(info.value)
    assert len(events.of("retrying")) == 2


@both_formats
async def test_script_exhausted_is_plain_to_see(scripted_server: StartServer, api_format: ApiFormat) -> None:
    server = scripted_server({"turns": [{"content": "only"}]})
    provider = provider_for(server, api_format, True, max_retries=1)
    await provider.complete(conversation("one"), [])
    with pytest.raises(ProviderError, match="script exhausted after 1 turns"):
        await provider.complete(conversation("two"), [])
    await provider.aclose()


@both_formats
@pytest.mark.parametrize("where", ["mid-stream", "before-headers"])
async def test_cancellation_aborts_the_request(
    scripted_server: StartServer, api_format: ApiFormat, where: str, tmp_path: Path
) -> None:
    turn: dict[str, object] = {"content": "x" * 400, "chunk_size": 2, "event_delay": 0.05}
    if where == "before-headers":
        turn["hold_file"] = str(tmp_path / "never")
    server = scripted_server({"turns": [turn]})
    provider = provider_for(server, api_format, True)
    events = Recorder()
    first_delta = asyncio.Event()

    def on_event(event: StreamEvent) -> None:
        events(event)
        first_delta.set()

    task = asyncio.create_task(provider.complete(conversation(), [], on_event=on_event))
    if where == "mid-stream":
        await asyncio.wait_for(first_delta.wait(), 5)
    else:
        while not server.requests:
            await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0
    assert events.of("retrying") == []
    assert len(server.requests) == 1
    await provider.aclose()
