"""Collecting a command's output stream: streamed to a callback as it arrives, kept within a memory cap."""

from __future__ import annotations

import asyncio
import codecs
import os
from collections.abc import Callable


class CappedBytes:
    """Keeps the first and the last half of `cap` bytes and counts what was dropped between them.

    Both ends matter for command output: the head says what started, the tail how it ended.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._half = cap // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - (self.cap - self._half)
        if excess > 0:
            del self._tail[:excess]
            self.dropped += excess

    def text(self) -> str:
        if not self.dropped:
            return bytes(self._head + self._tail).decode("utf-8", errors="replace")
        tail = bytes(self._tail).lstrip(bytes(range(0x80, 0xC0)))  # don't start inside a UTF-8 character
        return (
            self._head.decode("utf-8", errors="replace")
            + f"\n[... {self.dropped} bytes of output dropped here: the sandbox keeps at most "
            f"{self.cap} bytes per stream ...]\n"
            + tail.decode("utf-8", errors="replace")
        )


class StreamCollector(asyncio.Protocol):
    """Reads one pipe of a running command."""

    def __init__(self, cap: int, on_output: Callable[[str], None] | None) -> None:
        self._buffer = CappedBytes(cap)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._on_output = on_output
        self._transport: asyncio.ReadTransport | None = None
        self._notes: list[str] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def attach(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        transport, _ = await loop.connect_read_pipe(lambda: self, os.fdopen(fd, "rb", buffering=0))
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer.add(data)
        if self._on_output is None:
            return
        text = self._decoder.decode(data)
        if not text:
            return
        try:
            self._on_output(text)
        except Exception:
            # A failing display callback must not stop us from collecting the output the model needs.
            self._on_output = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def note(self, line: str) -> None:
        """Add a line of our own after the command's output."""
        self._notes.append(line)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def truncated(self) -> bool:
        return self._buffer.dropped > 0

    def text(self) -> str:
        text = self._buffer.text()
        for line in self._notes:
            text += ("" if not text or text.endswith("\n") else "\n") + line + "\n"
        return text
