"""Run the scripted model on 127.0.0.1 under uvicorn, in a background thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from m3code.replay.app import AbortConnection, ReplayApp
from m3code.replay.script import Script

START_TIMEOUT = 10.0


class _HideStagedCuts(logging.Filter):
    """uvicorn logs an app exception with a traceback; a staged cut is not one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], AbortConnection))


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideStagedCuts) for f in logger.filters):
        logger.addFilter(_HideStagedCuts())


class ScriptedModelServer:
    """A real HTTP server that answers chat requests from a script, in the OpenAI and Anthropic formats.

    `requests` lists every request received: {"path", "headers", "body", "turn", "attempt"}.
    """

    def __init__(
        self,
        script: Script | dict[str, Any],
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script = script if isinstance(script, Script) else Script.model_validate(script)
        self.host = host
        self.port = port
        self.app = ReplayApp(self.script, api_key=api_key)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"{self.url}/anthropic"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.app.state.requests()

    @property
    def turns_served(self) -> int:
        return self.app.state.served

    def start(self) -> ScriptedModelServer:
        if self._thread is not None:
            return self
        _install_log_filter()
        # proto must say TCP: asyncio turns Nagle off only on sockets that do, and with Nagle on every
        # response waits ~40 ms for the client's delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            http="h11",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name=f"replay-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        # `started` is set once the socket listens, so the first request cannot be refused.
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"scripted model server failed to start on {self.url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self.app.stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
