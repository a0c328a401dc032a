"""Sandbox costs per backend: command latency, start time, and the image build.

Method
- Command latency: one sandbox per backend (default limits, workspace-write, no network) runs `true` 200
  times in a row through Sandbox.exec, after 5 warm-up runs; we report the median, the 90th percentile and
  the minimum of wall time per call, as the agent sees it (spawn or docker exec, output collection, exit
  status, limit counters). Targets: docker < 60 ms, bwrap < 15 ms.
- Docker floor: the same 200 `true` through the docker SDK alone (exec_create, exec_start, exec_inspect,
  nothing of ours), to show how much of docker's latency is the daemon's and runc's.
- Start time: constructing the sandbox until it can run a command (for docker: starting the container;
  for bwrap: its cgroup and a probe run), median of 5, each followed by close(). Target: < 1.5 s.
- Image build (with --build): a forced rebuild of m3code-sandbox:<version> by the method `m3code sandbox
  build` would pick here (Dockerfile when the registry answers, else debootstrap + docker import), timed
  once; without --build we only check that the image is current.
The local backend is measured too, as the floor of running `bash -c` at all.

Run: `.venv/bin/python benchmarks/sandbox.py [--build] [--runs 200]`, as root where cgroups need it.
Results go to benchmarks/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "sandbox.json"

from sandbox import Sandbox, SandboxError  # noqa: E402


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[int(len(ordered) * 0.9) - 1] * 1000,
        "min_ms": ordered[0] * 1000,
        "runs": len(ordered),
    }


async def exec_latency(sandbox: Sandbox, runs: int) -> dict[str, float]:
    for _ in range(5):
        await sandbox.exec("true")
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        result = await sandbox.exec("true")
        samples.append(time.perf_counter() - began)
        assert result.exit_code == 0, result
    return summary(samples)


async def start_time(factory: Callable[[], Sandbox], runs: int = 5) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        sandbox = factory()
        await sandbox.exec("true")
        samples.append(time.perf_counter() - began)
        await sandbox.close()
    return summary(samples)


def docker_floor(client: Any, image: str, runs: int) -> dict[str, float]:
    container = client.containers.run(image, ["sleep", "infinity"], detach=True, init=True, network_mode="none")
    try:
        api = client.api
        samples = []
        for i in range(runs + 5):
            began = time.perf_counter()
            exec_id = api.exec_create(container.id, ["true"])["Id"]
            sock = api.exec_start(exec_id, socket=True)
            raw = getattr(sock, "_sock", sock)
            while raw.recv(65536):
                pass
            raw.close()
            api.exec_inspect(exec_id)
            if i >= 5:
                samples.append(time.perf_counter() - began)
        return summary(samples)
    finally:
        container.remove(force=True)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from sandbox.bwrap import BwrapSandbox
    from sandbox.local import LocalSandbox

    workspace = Path(tempfile.mkdtemp(prefix="m3code-bench-"))
    factories: dict[str, Callable[[], Sandbox]] = {
        "local": lambda: LocalSandbox(workspace),
        "bwrap": lambda: BwrapSandbox(workspace),
    }
    results: dict[str, Any] = {}
    client = None
    try:
        from sandbox.docker import DockerSandbox, connect
        from sandbox.image import build_image

        client = connect(timeout=1800)
        build = build_image(client, force=args.build, log=lambda line: print(f"  build: {line}", file=sys.stderr))
        results["image_build"] = {"tag": build.tag, "method": build.method, "seconds": round(build.seconds, 1)}
        factories["docker"] = lambda: DockerSandbox(workspace, client=client)
    except SandboxError as exc:
        results["docker_unavailable"] = str(exc)
    for name, factory in factories.items():
        try:
            sandbox = factory()
        except SandboxError as exc:
            results[name] = {"unavailable": str(exc)}
            continue
        try:
            latency = await exec_latency(sandbox, args.runs)
            extra = {"limits": sandbox.limit_mode} if isinstance(sandbox, BwrapSandbox) else {}
        finally:
            await sandbox.close()
        results[name] = {"exec_true": latency, "start": await start_time(factory), **extra}
    if client is not None and "docker" in factories:
        results["docker_sdk_floor"] = {"exec_true": docker_floor(client, results["image_build"]["tag"], args.runs)}
    return results


def table(results: dict[str, Any]) -> str:
    lines = [f"{'backend':<18}{'true: median':>14}{'p90':>10}{'min':>10}{'start: median':>16}"]
    for name in ("local", "bwrap", "docker", "docker_sdk_floor"):
        entry = results.get(name)
        if not entry or "exec_true" not in entry:
            continue
        latency, start = entry["exec_true"], entry.get("start")
        lines.append(
            f"{name:<18}{latency['median_ms']:>11.1f} ms{latency['p90_ms']:>7.1f} ms{latency['min_ms']:>7.1f} ms"
            + (f"{start['median_ms']:>13.0f} ms" if start else f"{'-':>16}")
        )
    if "image_build" in results:
        build = results["image_build"]
        lines.append(f"image build: {build['seconds']} s ({build['method']}, {build['tag']})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--build", action="store_true", help="force and time a rebuild of the sandbox image")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    results = asyncio.run(measure(args))
    print(table(results))
    record = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "uid": os.getuid()},
        "runs": args.runs,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
