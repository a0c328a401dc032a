"""Driving the app in tests: start it on a repository against a scripted model, and wait for what it shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from m3code.tui.app import M3App
from m3code.tui.options import AppOptions


def make_app(repo: Path, server: Any = None, *, mode: str = "solo", resume: str | None = None,
             **flags: Any) -> M3App:
    base = {"base_url": server.openai_base_url if server is not None else "http://127.0.0.1:9/v1", "mode": mode,
            "stream": True}
    options = AppOptions(workspace=repo, flags={**base, **flags}, resume=resume,
                         history_file=repo.parent / "history.jsonl", theme="textual-dark")
    return M3App(options)


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            app = pilot.app
            text = app.transcript_text() if isinstance(app, M3App) else ""
            raise AssertionError(f"timed out waiting for {what or predicate}; transcript:\n{text}")
        await asyncio.sleep(0.02)  # not pilot.pause: that waits for the screen to go idle, which streaming delays
    await pilot.pause()


async def type_text(pilot: Pilot[Any], text: str) -> None:
    """Put text in the input as a paste would, then let the app react."""
    app = pilot.app
    assert isinstance(app, M3App)
    app.prompt.insert(text)
    await pilot.pause()


async def send(pilot: Pilot[Any], text: str, key: str = "enter") -> None:
    await type_text(pilot, text)
    await pilot.press(key)
    await pilot.pause()


def idle(app: M3App) -> bool:
    return not app.controller.busy

