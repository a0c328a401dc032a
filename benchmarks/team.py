"""Agent Team overhead and concurrency, with a scripted model (no model latency).

Method
- Commands run with --sandbox local, so the figures are the team's own (benchmarks/sandbox.py has the
  sandboxes' cost per command).
- A git repository with one file; a scripted model served over real HTTP on 127.0.0.1 gives each agent
  its own lane: the planner submits 4 independent steps; each producer runs one command then reports; each
  verifier passes; the final verifier passes. The job runs as `m3code run` in a subprocess.
- Concurrency: the producers' command is `sleep 2`. Wall time with --parallel 4 against --parallel 1,
  same script, same machine, one after the other. Target: >= 3x.
- Overhead: the producers' command is `true`. Wall time per step, and the tokens the planner and the
  verifiers used next to the producers' (from the session's events; scripted usage figures are the
  server's estimate, about 4 characters a token).
Results: benchmarks/results/team.json and the table in benchmarks/README.md.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from m3code.replay.script import Script  # noqa: E402
from m3code.replay.server import ScriptedModelServer  # noqa: E402

STEPS = 4


def script(command: str) -> dict[str, Any]:
    steps = [{"id": f"s{i}", "title": f"step {i}", "goal": "run it", "acceptance": [], "depends_on": []}
             for i in range(STEPS)]
    agents: dict[str, Any] = {"planner": [
        {"tool_calls": [{"id": "p", "name": "submit_plan", "arguments": {"steps": steps}}]}, {"content": "ok"}]}
    verdict = [{"tool_calls": [{"id": "v", "name": "verdict", "arguments": {"verdict": "PASS", "findings": "ok"}}]},
               {"content": "PASS"}]
    for i in range(STEPS):
        agents[f"producer/s{i}"] = [
            {"tool_calls": [{"id": "c", "name": "bash", "arguments": {"command": f"{command} && echo {i} > f{i}"}}]},
            {"content": "done"}]
        agents[f"verifier/s{i}"] = verdict
    agents["verifier/final"] = verdict
    return {"agents": agents}


def run_job(command: str, parallel: int) -> tuple[float, list[dict[str, Any]]]:
    repo = Path(tempfile.mkdtemp(prefix="m3code-team-bench-"))
    (repo / "README.md").write_text("bench\n")
    (repo / "TASK.md").write_text("# Bench\n\nRun the steps.\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "x"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True)
    with ScriptedModelServer(Script.model_validate(script(command))) as server:
        began = time.perf_counter()
        command = [sys.executable, "-m", "m3code", "run", "TASK.md", "--base-url", server.openai_base_url,
                   "--parallel", str(parallel), "--sandbox", "local"]
        proc = subprocess.run(command, cwd=repo, capture_output=True, text=True)
        wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"job failed: {proc.stderr}")
    [session] = (repo / ".m3code" / "sessions").iterdir()
    events = [json.loads(line) for line in (session / "events.jsonl").read_text().splitlines()]
    return wall, events


def tokens_by_role(events: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e["type"] == "assistant_message":
            role = e["agent"].split("/")[0]
            out[role] = out.get(role, 0) + e["usage"]["input_tokens"] + e["usage"]["output_tokens"]
    return out


def main() -> None:
    serial, _ = run_job("sleep 2", 1)
    parallel, _ = run_job("sleep 2", 4)
    quick, events = run_job("true", 4)
    tokens = tokens_by_role(events)
    rows = {
        "4 steps, sleep 2, --parallel 1 (s)": serial,
        "4 steps, sleep 2, --parallel 4 (s)": parallel,
        "speed-up": serial / parallel,
        "4 steps, no work, --parallel 4 (s)": quick,
        "wall time per step, no work (s)": quick / STEPS,
        "tokens per step: producer": tokens.get("producer", 0) / STEPS,
        "tokens per step: planner + verifiers": (tokens.get("planner", 0) + tokens.get("verifier", 0)) / STEPS,
    }
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(), "python": platform.python_version()}
    out = ROOT / "benchmarks" / "results" / "team.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    for name, value in rows.items():
        print(f"{name:45s} {value:10.2f}")


if __name__ == "__main__":
    main()
