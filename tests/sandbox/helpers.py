"""Helpers for tests that check which processes are left."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path


def process_running(pid: int) -> bool:
    """Whether `pid` runs; a zombie does not (some container inits reap orphans only every few seconds)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state not in ("Z", "X")


async def wait_process_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not process_running(pid):
            return True
        await asyncio.sleep(0.05)
    return False
