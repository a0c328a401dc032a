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


def host_pids_with(text: str) -> list[int]:
    """Live host processes whose command line contains `text` (whatever namespace or container they are in)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and process_running(int(entry.name)):
            found.append(int(entry.name))
    return found


async def wait_no_host_process_with(text: str, within: float = 5.0) -> list[int]:
    """Wait until no host process mentions `text`; those still left after `within` seconds."""
    deadline = time.monotonic() + within
    while (left := host_pids_with(text)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left
