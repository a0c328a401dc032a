"""The local backend: commands run on the host as the current user, with no isolation.

It exists so that every tool goes through the one Sandbox protocol; use it only when asked for by name.
The policy is enforced where an in-process check can do it (file writes); commands are not confined.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

from sandbox import make_sandbox
from sandbox.base import ExecResult, Policy, SandboxError
from sandbox.output import StreamCollector
from sandbox.process_group import terminate_group
from sandbox.writes import atomic_write

__all__ = ["LocalSandbox", "make_sandbox"]  # make_sandbox re-exported: the app imports it from here

OUTPUT_CAP_BYTES = 1 << 20  # per stream, kept in memory
# After the shell exits, background children may still hold its output pipes open (`server &`);
# read for this long, then stop rather than wait for them.
DRAIN_GRACE_S = 1.0


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
        loop = asyncio.get_running_loop()
        out, err = StreamCollector(OUTPUT_CAP_BYTES, on_output), StreamCollector(OUTPUT_CAP_BYTES, on_output)
        proc = await _spawn(cmd, workdir, {**os.environ, **(env or {})}, out, err, loop)
        self._running.add(proc)
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                timed_out = True
                await terminate_group(proc)
            if not await _wait_closed([out, err], DRAIN_GRACE_S):
                err.note("[stopped reading output: background processes still hold it open; "
                         "redirect their output to a file to keep them running]")
        except BaseException:
            # Cancelled (or failed) while the command runs: it must not outlive us.
            await terminate_group(proc)
            raise
        finally:
            out.close()
            err.close()
            self._running.discard(proc)
        code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        return ExecResult(
            exit_code=128 - code if code < 0 else code,  # killed by signal N -> 128+N, as shells report it
            stdout=out.text(),
            stderr=err.text(),
            timed_out=timed_out,
            truncated=out.truncated or err.truncated,
        )

    async def read(self, path: Path) -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    async def write(self, path: Path, data: bytes) -> None:
        self._check_writable(path)
        await asyncio.to_thread(atomic_write, path, data)

    async def close(self) -> None:
        for proc in list(self._running):
            await terminate_group(proc)

    def _check_writable(self, path: Path) -> None:
        # PermissionError (an OSError) reaches the model as a tool error it can read.
        if self.policy == "read-only":
            raise PermissionError(errno.EACCES, "The sandbox policy is read-only: no writes", str(path))
        if self.policy == "workspace-write" and not path.resolve().is_relative_to(self.workspace):
            raise PermissionError(
                errno.EACCES, f"The sandbox policy only allows writes inside the workspace {self.workspace}",
                str(path),
            )


async def _spawn(
    cmd: str,
    cwd: Path,
    env: dict[str, str],
    out: StreamCollector,
    err: StreamCollector,
    loop: asyncio.AbstractEventLoop,
) -> asyncio.subprocess.Process:
    # Our own pipes (not PIPE) so that we, not the process transport, decide when to stop reading.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", cmd,
            stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=err_w,
            cwd=cwd, env=env,
            start_new_session=True,  # its own process group, so a kill reaches every child
        )
    except FileNotFoundError as exc:
        os.close(out_r)
        os.close(err_r)
        raise SandboxError("bash was not found on this machine; the local sandbox needs it.") from exc
    except BaseException:
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    await out.attach(loop, out_r)
    await err.attach(loop, err_r)
    return proc


async def _wait_closed(collectors: list[StreamCollector], timeout: float) -> bool:
    """Wait until every stream reached end of file; False if some did not within `timeout`."""
    _, pending = await asyncio.wait([c.closed for c in collectors], timeout=timeout)
    return not pending
