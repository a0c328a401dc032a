"""Harness start-up and per-tool-call overhead, next to a peer Python harness.

Method
- Cold start: each command runs as a fresh process 20 times (after 2 warm-up runs that fill the OS file
  cache); we report the median and spread of wall time. Commands: `m3code --version`, `m3code run --help`,
  and the same two for the peer (mini-swe-agent's `mini`, installed in a throwaway venv), whose equivalent
  commands are `mini --version`-like entry points; see PEER_COMMANDS.
- Per-tool-call overhead: an agent job whose scripted model (served over real HTTP on 127.0.0.1, no
  streaming) asks for one `read` call per turn, N turns. Per-turn wall time minus the time of a model call
  alone (the same request repeated against the same server) is what the harness adds per call: building
  the request, parsing, validating and running the tool, logging (with fsync) and rendering.

Run: `.venv/bin/python benchmarks/harness_startup.py [--peer]` (--peer builds the throwaway venv; needs
PyPI). Results go to benchmarks/results/harness_startup.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "harness_startup.json"
PEER_COMMANDS = {"--version": ["mini", "--help"], "run --help": ["mini", "--help"]}


def time_command(cmd: list[str], runs: int = 20) -> dict[str, float]:
    for _ in range(2):
        subprocess.run(cmd, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        samples.append(time.perf_counter() - began)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples)}


def peer_venv() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="m3code-peer-"))
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin" / "pip"), "install", "-q", "mini-swe-agent"], check=True)
    return folder / "bin"


async def tool_call_overhead(turns: int = 50) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from m3code.agent.loop import Agent, Budget
    from m3code.providers import make_provider
    from m3code.providers.base import ProviderSettings
    from m3code.providers.types import Message
    from m3code.replay.script import Script
    from m3code.replay.server import ScriptedModelServer
    from m3code.session.session import Session
    from sandbox.local import make_sandbox
    from tools.base import ToolContext
    from tools.registry import default_tools

    work = Path(tempfile.mkdtemp(prefix="m3code-bench-"))
    (work / "file.py").write_text("".join(f"line {i}\n" for i in range(200)))
    # Each turn reads from another line: the same call three times in a row would trip the loop breaker.
    reads = [{"id": f"c{i}", "name": "read", "arguments": {"path": "file.py", "offset": i + 1}} for i in range(turns)]
    script: dict[str, Any] = {"turns": [{"tool_calls": [read]} for read in reads] + [{"content": "done"}]}
    server = ScriptedModelServer(Script.model_validate(script))
    server.start()
    try:
        provider = make_provider(ProviderSettings(base_url=server.openai_base_url, model="bench", stream=False))
        session = Session("bench", work / ".m3code" / "sessions" / "bench")
        agent = Agent(provider, default_tools(), ToolContext(workspace=work, sandbox=make_sandbox("local", work)),
                      session, "bench", "bench", budget=Budget(max_turns=turns + 5), context_window=10**7)
        began = time.perf_counter()
        await agent.run([Message(role="user", content="bench")])
        total = time.perf_counter() - began
        # The model's share: the same kind of request, repeated (the server answers a repeat with the
        # same turn), timed alone.
        first = [Message(role="user", content="bench")]
        began = time.perf_counter()
        for _ in range(turns + 1):
            await provider.complete([agent.system, *first], agent.specs)
        model_only = time.perf_counter() - began
        await provider.aclose()
        session.close()
    finally:
        server.stop()
    n = turns + 1
    return {"turns": n, "per_turn_s": total / n, "model_call_s": model_only / n,
            "harness_overhead_s": (total - model_only) / n}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peer", action="store_true", help="also time mini-swe-agent in a throwaway venv")
    args = parser.parse_args()
    m3 = str(ROOT / ".venv" / "bin" / "m3code")
    rows: dict[str, Any] = {
        "m3code --version": time_command([m3, "--version"]),
        "m3code run --help": time_command([m3, "run", "--help"]),
    }
    if args.peer:
        bin_dir = peer_venv()
        for name, cmd in PEER_COMMANDS.items():
            rows[f"mini-swe-agent {' '.join(cmd[1:])} (for m3code {name})"] = time_command(
                [str(bin_dir / cmd[0]), *cmd[1:]])
    rows["tool call overhead (read, scripted model)"] = asyncio.run(tool_call_overhead())
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} {platform.processor()}",
            "python": platform.python_version()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    for name, row in rows.items():
        print(f"{name:60s} " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in row.items()))


if __name__ == "__main__":
    main()
