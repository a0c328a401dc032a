"""`m3code demo`: the real harness on an example repository, driven by a replayed model transcript.

Nothing here is faked but the model: the scripted turns are served over real HTTP on 127.0.0.1 in the
OpenAI wire format, and the tools, the session log and the output are the ones `m3code run` uses.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from m3code.replay.script import Script
from m3code.replay.server import ScriptedModelServer
from m3code.run import RunRequest
from sandbox import SandboxError, make_sandbox

DEMO_DIR = Path(__file__).parent / "demo"


def prepare_demo(target: Path | None, output: str) -> tuple[RunRequest, ScriptedModelServer]:
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="m3code-demo-"))
    elif target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; pick a new folder for the demo repository.")
    shutil.copytree(DEMO_DIR / "repo", target, dirs_exist_ok=True)
    _git_init(target)
    server = ScriptedModelServer(Script.load(DEMO_DIR / "script.json"))
    server.start()
    print(f"REPLAY: a scripted MiniMax-M3 transcript served on {server.url} drives the real harness "
          f"(tools, session log, output). No model is called.\nDemo repository: {target}\n",
          file=sys.stderr)
    flags = {"base_url": server.openai_base_url, "model": "MiniMax-M3", "api_format": "openai", "mode": "solo",
             "sandbox": _sandbox_kind(target)}
    return RunRequest(workspace=target, task_file=target / "TASK.md", output=output,  # type: ignore[arg-type]
                      flags=flags), server


def _sandbox_kind(folder: Path) -> str:
    """Docker or bubblewrap when this machine has one; else the demo's few known commands run locally."""
    try:
        box = make_sandbox("auto", folder)
    except SandboxError as exc:
        print(f"No sandbox backend here ({_first_line(exc)}); the demo's commands run with --sandbox local.\n"
              "See `m3code sandbox doctor`.\n", file=sys.stderr)
        return "local"
    asyncio.run(box.close())
    return "auto"


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _git_init(folder: Path) -> None:
    if shutil.which("git") is None:
        return
    env_args = ["-c", "user.name=m3code demo", "-c", "user.email=demo@m3code.invalid"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "Example repository"]):
        subprocess.run(["git", *env_args, *cmd], cwd=folder, check=True, capture_output=True)
