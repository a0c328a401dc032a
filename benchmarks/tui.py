"""The app's responsiveness, measured as a person feels it: in a real pseudo-terminal.

Method
- First paint: start `m3code` (a fresh process, in a 100×30 pty) and time until the first frame holds the
  welcome line; 10 runs after 2 warm-ups (OS file cache filled), median and spread. Also with
  `--resume` of a 10,000-event session (the frame then holds the session's last line).
- Keystroke-to-screen latency: with the 10,000-event session open, type 40 distinct characters one at a
  time; for each, the time from writing it to the pty until a frame containing it comes back. Median, p90
  and max. The pty is read all the time, so the app never waits on us.
- Transcript scroll: with the same session, page up 30 times; time from key to the next frame.
The session is synthetic but shaped like a real one: per turn, a markdown answer with a code block, a
bash call whose result has 20 lines, and an edit with a diff (2,500 turns × 4 events).

Run: `.venv/bin/python benchmarks/tui.py`. Results go to benchmarks/results/tui.json.
Targets: first paint < 0.5 s, keystroke latency < 50 ms.
"""

from __future__ import annotations

import json
import os
import platform
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "tui.json"
SIZE = (30, 100)  # rows, columns
sys.path.insert(0, str(ROOT))


def make_session(repo: Path, turns: int = 2500) -> str:
    from m3code.providers.types import Message, ToolCall, Usage
    from m3code.session.events import (
        AssistantMessage,
        SessionEnded,
        SessionStarted,
        ToolCallStarted,
        ToolResultEvent,
        UserMessage,
    )

    sid = "20260101-000000-bench0"
    folder = repo / ".m3code" / "sessions" / sid
    folder.mkdir(parents=True)
    usage = Usage(input_tokens=20_000, output_tokens=300, cost_usd=0.001)
    lines = [SessionStarted(session_id=sid, task="bench", workspace=str(repo), system_prompt="", model="MiniMax-M3",
                            base_url="http://127.0.0.1:9/v1", api_format="openai", version="0", mode="solo"),
             UserMessage(content="bench")]
    diff = "--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n def f():\n-    return 1\n+    return 2\n"
    for n in range(turns):
        call = ToolCall(id=f"c{n}", name="bash", arguments=json.dumps({"command": f"pytest -q tests/test_{n}.py"}))
        answer = (f"Turn {n}: I looked at **module {n}** and ran its tests.\n\n```python\ndef f():\n    return {n}\n"
                  "```\n\nNext I will edit it.")
        lines += [
            AssistantMessage(message=Message(role="assistant", content=answer, tool_calls=[call]), usage=usage,
                             stop_reason="tool_use"),
            ToolCallStarted(call_id=call.id, name="bash", arguments=call.arguments),
            ToolResultEvent(call_id=call.id, name="bash", data={"exit_code": 0},
                            output="\n".join(f"tests/test_{n}.py::test_{i} PASSED" for i in range(20))),
            ToolResultEvent(call_id=f"e{n}", name="edit", output="Edited.", data={"diff": diff}),
        ]
    lines.append(SessionEnded(status="done", exit_code=0, final_answer="END-OF-BENCH-SESSION", usage=usage))
    lines.append(AssistantMessage(message=Message(role="assistant", content="END-OF-BENCH-SESSION"), usage=usage,
                                  stop_reason="end_turn"))
    (folder / "events.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in lines))
    return sid


class Terminal:
    """`m3code` in a pseudo-terminal; every byte it writes is collected with its arrival time."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become m3code
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "m3code", *args], env)
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[0], SIZE[1], 0, 0))
        self.out = b""

    def read_until(self, needle: bytes, timeout: float = 30.0, start: int = 0) -> float:
        """Seconds (monotonic clock) when `needle` appeared in the output after offset `start`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                self.out += chunk
                if needle in self.out[start:]:
                    return time.monotonic()
        raise TimeoutError(f"{needle!r} never appeared; last output: {self.out[-500:]!r}")

    def drain(self, quiet: float = 0.3) -> None:
        """Read until the app has written nothing for `quiet` seconds."""
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            ready, _, _ = select.select([self.fd], [], [], 0.02)
            if ready:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    return
                last = time.monotonic()

    def type(self, text: str) -> float:
        began = time.monotonic()
        os.write(self.fd, text.encode())
        return began

    def close(self) -> None:
        os.write(self.fd, b"\x11")  # ctrl+q
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            self.drain(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def env_for(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "TERM": "xterm-256color",
            "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / ".config"),
            "COLORTERM": "truecolor"}


def first_paint(repo: Path, env: dict[str, str], args: list[str], needle: bytes, runs: int = 10) -> dict[str, float]:
    samples = []
    for i in range(runs + 2):
        began = time.monotonic()
        term = Terminal(args, repo, env)
        painted = term.read_until(needle)
        term.drain(0.2)
        term.close()
        if i >= 2:
            samples.append(painted - began)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples)}


def latencies(repo: Path, env: dict[str, str], sid: str) -> dict[str, Any]:
    term = Terminal(["--resume", sid], repo, env)
    term.read_until(b"END-OF-BENCH-SESSION")
    term.drain(0.5)
    keys = []
    for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN":
        start = len(term.out)
        began = term.type(ch)
        shown = term.read_until(ch.encode(), start=start)
        keys.append(shown - began)
        term.drain(0.05)
    os.write(term.fd, b"\x15")  # ctrl+u: clear the input
    term.drain(0.3)
    scrolls = []
    for _ in range(30):
        start = len(term.out)
        began = term.type("\x1b[5~")  # page up
        shown = term.read_until(b"Turn ", start=start)
        scrolls.append(shown - began)
        term.drain(0.05)
    term.close()

    def summary(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        return {"median_ms": 1000 * statistics.median(xs), "p90_ms": 1000 * xs[int(0.9 * (len(xs) - 1))],
                "max_ms": 1000 * xs[-1], "n": len(xs)}

    return {"keystroke": summary(keys), "page_up": summary(scrolls)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="m3code-tui-bench-"))
    try:
        repo, home = work / "repo", work / "home"
        repo.mkdir()
        (home / ".config" / "m3code").mkdir(parents=True)
        (home / ".config" / "m3code" / "config.toml").write_text('sandbox = "local"\nmode = "solo"\n'
                                                                 'base_url = "http://127.0.0.1:9/v1"\n')
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        env = env_for(home)
        began = time.monotonic()
        sid = make_session(repo)
        built = time.monotonic() - began
        events = sum(1 for _ in (repo / ".m3code" / "sessions" / sid / "events.jsonl").open())
        results = {
            "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count()},
            "session_events": events,
            "session_build_s": built,
            "first_paint_empty": first_paint(repo, env, [], b"type a task"),
            "first_paint_resume_10k": first_paint(repo, env, ["--resume", sid], b"END-OF-BENCH-SESSION", runs=5),
            **latencies(repo, env, sid),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
