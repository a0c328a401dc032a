"""Which m3code process owns a sandbox, so that leftovers of one that died can be found and removed."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_start(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot: with the pid, it names a process uniquely."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else None


def owner_tag(pid: int | None = None) -> str:
    """`host:pid:start` of this process (or `pid`)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{process_start(pid) or '?'}"


def owner_alive(tag: str) -> bool | None:
    """Whether the process `tag` names still runs; None when it ran on another host (we cannot tell)."""
    host, _, rest = tag.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return None
    if not pid.isdigit():
        return False
    current = process_start(int(pid))
    return current is not None and (start == "?" or current == start)
