"""The local backend: commands run on the host as the current user, with no isolation.

It exists so that every tool goes through the one Sandbox protocol; use it only when asked for by name.
The policy is enforced where an in-process check can do it (file writes); commands are not confined.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from sandbox import make_sandbox
from sandbox.base import ExecResult, Policy, SandboxError
from sandbox.process import DRAIN_GRACE_S, OUTPUT_CAP_BYTES, run_process
from sandbox.process_group import terminate_group
from sandbox.writes import atomic_write, check_writable

# make_sandbox is re-exported: the app imports it from here.
__all__ = ["DRAIN_GRACE_S", "OUTPUT_CAP_BYTES", "LocalSandbox", "make_sandbox"]


class LocalSandbox:
    """Runs `bash -c` in the workspace; reads and writes files directly."""

    def __init__(self, workspace: Path, policy: Policy = "full-access") -> None:
        if not workspace.is_dir():
            raise SandboxError(f"The workspace {workspace} is not a directory; create it or choose another.")
        self.workspace = workspace.resolve()
        self.policy: Policy = policy
        self._running: set[asyncio.subprocess.Process] = set()

    async def exec(
        self,
        cmd: str,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> ExecResult:
        workdir = cwd if cwd is not None else self.workspace
        if not workdir.is_dir():
            raise SandboxError(f"The working directory {workdir} does not exist.")
        return await run_process(
            ["bash", "-c", cmd], cwd=workdir, env={**os.environ, **(env or {})}, timeout=timeout,
            on_output=on_output, running=self._running,
            missing_hint="bash was not found on this machine; the local sandbox needs it.",
        )

    async def read(self, path: Path) -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    async def write(self, path: Path, data: bytes) -> None:
        check_writable(self.policy, self.workspace, path)
        await asyncio.to_thread(atomic_write, path, data)

    async def close(self) -> None:
        for proc in list(self._running):
            await terminate_group(proc)
