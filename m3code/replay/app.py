"""The scripted model as a raw ASGI app: both wire formats, staged failures, every request recorded."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3code.replay import anthropic_wire, openai_wire
from m3code.replay.script import AGENT_MARKER, Fault, Script, Turn

AsgiMessage = dict[str, Any]
Receive = Callable[[], Awaitable[AsgiMessage]]
Send = Callable[[AsgiMessage], Awaitable[None]]


class AbortConnection(Exception):
    """Raised after a partial response so that the server drops the connection: a staged cut."""


@dataclass(frozen=True)
class WireFormat:
    name: str
    response: Callable[[Turn, int, dict[str, Any]], dict[str, Any]]
    stream_events: Callable[[Turn, int, dict[str, Any]], list[bytes]]
    error_body: Callable[[str, str], dict[str, Any]]


OPENAI = WireFormat("openai", openai_wire.response, openai_wire.stream_events, openai_wire.error_body)
ANTHROPIC = WireFormat(
    "anthropic", anthropic_wire.response, anthropic_wire.stream_events, anthropic_wire.error_body
)
ROUTES = {
    "/v1/chat/completions": OPENAI,
    "/chat/completions": OPENAI,
    "/anthropic/v1/messages": ANTHROPIC,
    "/v1/messages": ANTHROPIC,
}

_ERROR_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_kind(status: int) -> str:
    return _ERROR_KINDS.get(status, "api_error" if status >= 500 else "invalid_request_error")


def conversation_key(body: dict[str, Any]) -> str:
    """Identity of a request's conversation (not its stream flag, temperature...): retries and resumed
    sessions ask the same question and must get the same turn."""
    convo = {"system": body.get("system"), "messages": body.get("messages")}
    canonical = json.dumps(convo, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ReplayState:
    """Which turn each conversation got, attempts per turn, and the request log. Shared with the
    thread that owns the server object, hence the lock."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._lock = threading.Lock()
        self._lanes = script.lanes()
        self._turn_by_key: dict[str, tuple[str, int]] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self._next = dict.fromkeys(self._lanes, 0)
        self._requests: list[dict[str, Any]] = []

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def served(self) -> int:
        with self._lock:
            return sum(self._next.values())

    def lane_of(self, body: dict[str, Any]) -> str:
        """The agent lane a request belongs to, from the marker in its system prompt ("" if none)."""
        system = body.get("system")
        messages = body.get("messages") or [{}]
        if system is None and isinstance(messages[0], dict) and messages[0].get("role") == "system":
            system = messages[0].get("content")
        if isinstance(system, list):  # Anthropic blocks, or OpenAI content parts
            system = " ".join(str(block.get("text", "")) for block in system if isinstance(block, dict))
        found = AGENT_MARKER.search(system if isinstance(system, str) else "")
        return found.group(1) if found and found.group(1) in self._lanes else ""

    def select(self, key: str, lane: str = "") -> tuple[Turn, int, int] | None:
        """(turn, its index in the lane, attempt number from 0) for this conversation, or None when the
        lane is spent."""
        with self._lock:
            picked = self._turn_by_key.get(key)
            if picked is None:
                if self._next[lane] >= len(self._lanes[lane]):
                    return None
                picked = self._turn_by_key[key] = (lane, self._next[lane])
                self._next[lane] += 1
            attempt = self._attempts.get(picked, 0)
            self._attempts[picked] = attempt + 1
            return self._lanes[picked[0]][picked[1]], picked[1], attempt


class ReplayApp:
    def __init__(self, script: Script, api_key: str | None = None) -> None:
        self.state = ReplayState(script)
        self.api_key = api_key
        # Set when the server shuts down, so held turns give up instead of blocking the shutdown.
        self.stopping = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = False

        async def tracked_send(message: AsgiMessage) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._handle(scope, receive, tracked_send)
        except AbortConnection:
            raise
        except Exception as exc:
            # A bug here should read as one in the test that hit it, not as a hung or empty response.
            if started:
                raise
            await _send_json(
                send, 500, {"error": {"message": f"replay server error: {exc!r}", "type": "api_error"}}
            )

    async def _handle(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/health":
            turns = self.state.script.total_turns()
            await _send_json(send, 200, {"status": "ok", "turns": turns, "served": self.state.served})
            return
        fmt = ROUTES.get(path)
        if fmt is None or method != "POST":
            await _send_json(
                send, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}}
            )
            return
        raw = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        entry: dict[str, Any] = {
            "path": path,
            "headers": headers,
            "body": body,
            "turn": None,
            "attempt": None,
        }
        self.state.record(entry)

        if not self._authorized(headers):
            await _send_json(send, 401, fmt.error_body("invalid api key", "authentication_error"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await _send_json(
                send,
                400,
                fmt.error_body("request body must be JSON with `messages`", "invalid_request_error"),
            )
            return
        lane = self.state.lane_of(body)
        picked = self.state.select(conversation_key(body), lane)
        if picked is None:
            who = f" of agent {lane}" if lane else ""
            message = f"script exhausted after {len(self.state.script.lanes()[lane])} turns{who}"
            await _send_json(send, 500, fmt.error_body(message, "script_exhausted"))
            return
        turn, index, attempt = picked
        entry["turn"], entry["attempt"], entry["agent"] = index, attempt, lane
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            if not await self._wait(turn, gone):
                return
            fault = turn.faults[attempt] if attempt < len(turn.faults) else None
            if fault is not None and fault.status is not None:
                await self._send_fault(send, fmt, fault)
            elif body.get("stream"):
                await self._send_stream(send, fmt.stream_events(turn, index, body), turn, fault, gone)
            else:
                await self._send_whole(send, json.dumps(fmt.response(turn, index, body)).encode(), fault)
        finally:
            watcher.cancel()

    def _authorized(self, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        return (
            headers.get("authorization") == f"Bearer {self.api_key}"
            or headers.get("x-api-key") == self.api_key
        )

    async def _wait(self, turn: Turn, gone: asyncio.Event) -> bool:
        """Hold and delay as scripted; False when the client left or the server is stopping."""
        if turn.hold_file:
            hold = Path(turn.hold_file)
            while not hold.exists():
                if self.stopping.is_set() or gone.is_set():
                    return False
                await asyncio.sleep(0.02)
        if turn.delay:
            await asyncio.sleep(turn.delay)
        return not gone.is_set()

    async def _send_fault(self, send: Send, fmt: WireFormat, fault: Fault) -> None:
        status = fault.status or 500
        extra: list[tuple[bytes, bytes]] = []
        if fault.retry_after is not None:
            extra.append((b"retry-after", f"{fault.retry_after:g}".encode()))
        if fault.body is not None:
            await _send_bytes(send, status, fault.body.encode(), b"application/json", extra)
            return
        message = f"scripted fault: HTTP {status}"
        await _send_bytes(
            send,
            status,
            json.dumps(fmt.error_body(message, _error_kind(status))).encode(),
            b"application/json",
            extra,
        )

    async def _send_stream(
        self, send: Send, events: list[bytes], turn: Turn, cut: Fault | None, gone: asyncio.Event
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        count = len(events) if cut is None else min(cut.cut_after or 0, len(events))
        for i, event in enumerate(events[:count]):
            if i and turn.event_delay:
                await asyncio.sleep(turn.event_delay)
            if gone.is_set() or self.stopping.is_set():
                return  # nobody to stream to (a cancelled client) or shutting down
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if cut is not None and not cut.clean_close:
            raise AbortConnection("staged cut")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_whole(self, send: Send, payload: bytes, cut: Fault | None) -> None:
        if cut is None:
            await _send_bytes(send, 200, payload, b"application/json")
            return
        partial = payload[: len(payload) // 2]
        if cut.clean_close:
            await _send_bytes(send, 200, partial, b"application/json")
            return
        # Promise the whole body, deliver half, drop the connection.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": partial, "more_body": True})
        raise AbortConnection("staged cut")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    # After the body, the next message the server delivers is the client going away.
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _send_bytes(
    send: Send,
    status: int,
    payload: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(payload)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _send_json(send: Send, status: int, data: dict[str, Any]) -> None:
    await _send_bytes(send, status, json.dumps(data).encode(), b"application/json")
