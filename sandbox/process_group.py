"""Stopping a command together with every process it started (its process group)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL


async def terminate_group(proc: asyncio.subprocess.Process, grace: float | None = None) -> None:
    """SIGTERM the group `proc` leads, give it `grace` seconds to exit, then SIGKILL whatever is left."""
    grace = KILL_GRACE_S if grace is None else grace
    pgid = proc.pid  # started with start_new_session, so the shell leads its own group
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    try:
        signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
        # Children may outlive the shell (or trap SIGTERM); they get the rest of the same grace.
        while group_running(pgid) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        # Also runs when this wait is itself cancelled, so nothing survives a second cancel.
        signal_group(pgid, signal.SIGKILL)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False when no process (not even a zombie) of it is left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_running(pgid: int) -> bool:
    """Whether a live (not zombie) process of the group is left.

    Orphaned children are reaped by init, which in some containers does so only every few seconds; counting
    their zombies as alive would make every kill wait out the whole grace period.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return signal_group(pgid, 0)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while we looked
        # After the command name: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
