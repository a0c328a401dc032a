"""Running `m3code` as a person would: a subprocess, with its stdout, stderr and exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def m3code(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60,
           ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "m3code", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


def popen_m3code(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "m3code", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def session_dirs(repo: Path) -> list[Path]:
    root = repo / ".m3code" / "sessions"
    return sorted(p for p in root.iterdir()) if root.is_dir() else []


def events(session: Path) -> list[dict[str, Any]]:
    lines = (session / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "name": name, "arguments": arguments}


def wait_for(proc: subprocess.Popen[str], done: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until `done()` holds, failing with the process's output if it exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
