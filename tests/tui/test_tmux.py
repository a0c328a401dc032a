"""The app as a person uses it: `m3code` in a real terminal (tmux), keys typed, the screen read back."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import call

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (apt-get install tmux) so the terminal test cannot run")

SCRIPT = {"turns": [
    {"tool_calls": [call("t1", "bash", command="python3 -m unittest -q 2>&1 | tail -1")]},
    {"content": "The slug tests ran: TMUX-ANSWER-42."},
]}


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout


def screen(socket: str) -> str:
    return tmux(socket, "capture-pane", "-p", "-t", "app")


def wait_screen(socket: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(socket)
        if text in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never showed; the screen:\n{shown}")


def test_a_person_types_a_task_and_reads_the_answer(demo_repo: Path, scripted_server) -> None:
    server = scripted_server(SCRIPT)
    socket = f"m3code-test-{os.getpid()}"
    env = {k: os.environ[k] for k in ("HOME", "XDG_CONFIG_HOME", "PATH", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                      "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL") if k in os.environ}
    env |= {"TERM": "xterm-256color", "XDG_STATE_HOME": str(demo_repo.parent / "state")}
    command = " ".join([
        "env", "-i", *(shlex.quote(f"{k}={v}") for k, v in env.items()),
        shlex.quote(sys.executable), "-m", "m3code", "--solo", "--base-url", shlex.quote(server.openai_base_url),
    ])
    tmux(socket, "-f", "/dev/null", "new-session", "-d", "-s", "app", "-x", "100", "-y", "30", "-c",
         str(demo_repo), command)
    try:
        tmux(socket, "set-option", "-t", "app", "remain-on-exit", "on")
        wait_screen(socket, "type a task")
        tmux(socket, "send-keys", "-t", "app", "-l", "Run the slug tests")
        tmux(socket, "send-keys", "-t", "app", "Enter")
        shown = wait_screen(socket, "TMUX-ANSWER-42")
        assert "bash" in shown and "exit 0" in shown and "ready" in shown
        tmux(socket, "send-keys", "-t", "app", "C-q")
        deadline = time.monotonic() + 15
        while tmux(socket, "display-message", "-p", "-t", "app", "#{pane_dead}").strip() != "1":
            assert time.monotonic() < deadline, screen(socket)
            time.sleep(0.1)
        status = tmux(socket, "display-message", "-p", "-t", "app", "#{pane_dead_status}:#{pane_dead_signal}")
        after = screen(socket)
        assert "Traceback" not in after, after
        assert status.strip() in ("0:", ":"), (status, after)  # older tmux leaves the status empty
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
