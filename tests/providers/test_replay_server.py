"""The scripted model server itself: turn selection, holds, the request log, the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from m3code.providers import Message
from m3code.replay import Script, ScriptedModelServer
from tests.providers.helpers import conversation, provider_for

StartServer = Callable[..., ScriptedModelServer]
ROOT = Path(__file__).resolve().parents[2]


async def test_the_same_conversation_gets_the_same_turn(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "first"}, {"content": "second"}]})
    provider = provider_for(server, "openai", True)
    a = await provider.complete(conversation(), [])
    # Same messages, other request flags (a resumed session, a retry): same answer, not the next turn.
    again = provider_for(server, "openai", False, max_tokens=50)
    b = await again.complete(conversation(), [])
    c = await provider.complete([*conversation(), a.message, Message(role="user", content="more")], [])
    await provider.aclose()
    await again.aclose()
    assert (a.message.content, b.message.content, c.message.content) == ("first", "first", "second")
    assert [(r["turn"], r["attempt"]) for r in server.requests] == [(0, 0), (0, 1), (1, 0)]
    assert server.turns_served == 2


def test_health_and_unknown_routes(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "a"}]})
    health = httpx.get(f"{server.url}/health")
    assert health.status_code == 200 and health.json() == {"status": "ok", "turns": 1, "served": 0}
    assert httpx.post(f"{server.url}/v2/nothing", json={}).status_code == 404
    bad = httpx.post(f"{server.openai_base_url}/chat/completions", content=b"not json")
    assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]


async def test_hold_file_freezes_a_turn(scripted_server: StartServer, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    server = scripted_server({"turns": [{"content": "released", "hold_file": str(gate)}]})
    provider = provider_for(server, "anthropic", True)
    threading.Timer(0.3, gate.touch).start()
    started = time.monotonic()
    completion = await provider.complete(conversation(), [])
    await provider.aclose()
    assert completion.message.content == "released"
    assert time.monotonic() - started >= 0.3


def test_requests_are_recorded_with_headers_and_body(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "a"}]})
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    reply = httpx.post(f"{server.anthropic_base_url}/v1/messages", json=body, headers={"x-api-key": "k"})
    assert reply.json()["content"] == [{"type": "text", "text": "a"}]
    [record] = server.requests
    assert record["path"] == "/anthropic/v1/messages" and record["body"] == body
    assert record["headers"]["x-api-key"] == "k"


def test_auth_errors_come_in_each_formats_shape(scripted_server: StartServer) -> None:
    server = scripted_server({"turns": [{"content": "a"}]}, api_key="k")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    openai = httpx.post(f"{server.openai_base_url}/chat/completions", json=body)
    anthropic = httpx.post(f"{server.anthropic_base_url}/v1/messages", json=body)
    assert openai.status_code == anthropic.status_code == 401
    assert openai.json()["error"]["type"] == "authentication_error"
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"] == "authentication_error"
    ok = httpx.post(
        f"{server.openai_base_url}/chat/completions", json=body, headers={"authorization": "Bearer k"}
    )
    assert ok.status_code == 200


def test_script_validation(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Script.model_validate({"turns": [{"content": "a", "faults": [{"status": 500, "cut_after": 2}]}]})
    with pytest.raises(ValidationError):
        Script.model_validate({"turns": [{"contents": "typo"}]})
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"turns": [{"tool_calls": [{"name": "read", "arguments": "{oops"}]}]}))
    assert Script.load(path).turns[0].tool_calls[0].arguments_text() == "{oops"


def test_context_manager_starts_and_stops() -> None:
    with ScriptedModelServer(Script(turns=[])) as server:
        assert httpx.get(f"{server.url}/health").status_code == 200
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")


def test_command_line_serves_a_script(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"turns": [{"content": "from the cli"}]}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "m3code.replay", str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        openai_url = lines[1].split()[-1]
        assert openai_url.startswith("http://127.0.0.1:") and openai_url.endswith("/v1")
        assert lines[2].split()[-1].endswith("/anthropic")
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{openai_url}/chat/completions", json=body)
        assert reply.json()["choices"][0]["message"]["content"] == "from the cli"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
