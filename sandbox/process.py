"""Running one host process with its output collected: the exec loop the local and bwrap backends share."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sandbox.base import ExecResult, SandboxError
from sandbox.output import StreamCollector
from sandbox.process_group import terminate_group

OUTPUT_CAP_BYTES = 1 << 20  # per stream, kept in memory
# After the command exits, background children may still hold its output pipes open (`server &`);
# read for this long, then stop rather than wait for them.
DRAIN_GRACE_S = 1.0


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float | None,
    on_output: Callable[[str], None] | None,
    running: set[asyncio.subprocess.Process],
    missing_hint: str,
) -> ExecResult:
    """Run `argv` in its own process group; on timeout or cancellation the whole group is stopped.

    `running` holds the process while it runs, so that the backend's close() can stop it; `missing_hint`
    is the SandboxError raised when argv[0] does not exist.
    """
    loop = asyncio.get_running_loop()
    out, err = StreamCollector(OUTPUT_CAP_BYTES, on_output), StreamCollector(OUTPUT_CAP_BYTES, on_output)
    proc = await _spawn(argv, cwd, env, out, err, loop, missing_hint)
    running.add(proc)
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            await terminate_group(proc)
        if not await wait_closed([out, err], DRAIN_GRACE_S):
            err.note("[stopped reading output: background processes still hold it open; "
                     "redirect their output to a file to keep them running]")
    except BaseException:
        # Cancelled (or failed) while the command runs: it must not outlive us.
        await terminate_group(proc)
        raise
    finally:
        out.close()
        err.close()
        running.discard(proc)
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return ExecResult(
        exit_code=128 - code if code < 0 else code,  # killed by signal N -> 128+N, as shells report it
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        truncated=out.truncated or err.truncated,
    )


async def _spawn(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    out: StreamCollector,
    err: StreamCollector,
    loop: asyncio.AbstractEventLoop,
    missing_hint: str,
) -> asyncio.subprocess.Process:
    # Our own pipes (not PIPE) so that we, not the process transport, decide when to stop reading.
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=err_w,
            cwd=cwd, env=dict(env),
            start_new_session=True,  # its own process group, so a kill reaches every child
        )
    except FileNotFoundError as exc:
        os.close(out_r)
        os.close(err_r)
        raise SandboxError(missing_hint) from exc
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


async def wait_closed(collectors: list[StreamCollector], timeout: float) -> bool:
    """Wait until every stream reached end of file; False if some did not within `timeout`."""
    _, pending = await asyncio.wait([c.closed for c in collectors], timeout=timeout)
    return not pending


def add_note(result: ExecResult, line: str) -> None:
    """Append a line of the sandbox's own (a limit that was hit, say) to the command's stderr."""
    sep = "" if not result.stderr or result.stderr.endswith("\n") else "\n"
    result.stderr += f"{sep}{line}\n"
