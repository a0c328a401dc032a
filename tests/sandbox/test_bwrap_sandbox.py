"""What only the bwrap backend has: its command line, rlimits where no cgroup works, and dying with m3code."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sandbox import Limits, SandboxError
from sandbox.bwrap import BwrapSandbox
from sandbox.cgroups import prune_cgroups
from tests.sandbox.conftest import TEST_LIMITS, bwrap_unavailable
from tests.sandbox.helpers import wait_no_host_process_with

pytestmark = pytest.mark.skipif(bwrap_unavailable() is not None, reason=str(bwrap_unavailable()))
REPO = Path(__file__).resolve().parents[2]


def test_missing_bwrap_says_how_to_install_it(workspace: Path) -> None:
    with pytest.raises(SandboxError, match=r"was not found. Fix: install bubblewrap \(Debian/Ubuntu: sudo apt-get"):
        BwrapSandbox(workspace, bwrap="/nonexistent/bwrap")


def test_bwrap_that_cannot_make_namespaces_says_why(workspace: Path, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxError, match=r"No permissions to create new namespace.*Fix: bwrap needs user namespaces"):
        BwrapSandbox(workspace, bwrap=str(fake), use_cgroup=False)


async def test_network_when_asked_for(workspace: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sandbox = BwrapSandbox(workspace, network=True, limits=TEST_LIMITS)
    try:
        result = await sandbox.exec(f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}))\"")
        assert result.exit_code == 0, result.stderr
    finally:
        await sandbox.close()
        server.close()


async def test_full_access_writes_the_host(workspace: Path) -> None:
    # Somewhere outside the workspace that is not under /tmp (private even with full access) — the checkout
    # itself may live in /tmp — so the real home directory.
    outside = Path(pwd.getpwuid(os.getuid()).pw_dir) / f".m3code-full-access-{uuid.uuid4().hex[:8]}"
    sandbox = BwrapSandbox(workspace, "full-access", limits=TEST_LIMITS)
    try:
        result = await sandbox.exec(f"echo hi > {outside}")
        assert result.exit_code == 0 and outside.read_text() == "hi\n"
    finally:
        outside.unlink(missing_ok=True)
        await sandbox.close()


async def test_hidden_paths_are_refused_to_the_tools_too(workspace: Path) -> None:
    sandbox = BwrapSandbox(workspace, limits=TEST_LIMITS)
    try:
        with pytest.raises(PermissionError, match="hides this path"):
            await sandbox.read(Path.home() / ".bashrc")
        with pytest.raises(SandboxError, match="hidden inside the sandbox"):
            await sandbox.exec("true", cwd=Path("/root"))
    finally:
        await sandbox.close()


async def test_rlimits_when_no_cgroup(workspace: Path) -> None:
    sandbox = BwrapSandbox(workspace, use_cgroup=False, limits=Limits(memory_mb=256, pids=64, cpu_seconds=1))
    try:
        assert sandbox.limit_mode.startswith("rlimits")
        result = await sandbox.exec("ulimit -v; ulimit -t; python3 -c 'bytearray(1 << 30)'")
        assert result.stdout.splitlines() == [str(256 * 1024), "1"]
        assert "MemoryError" in result.stderr
        result = await sandbox.exec("while :; do :; done", timeout=20)  # stopped by its CPU time, not the timeout
        assert not result.timed_out and result.exit_code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL)
    finally:
        await sandbox.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores RLIMIT_NPROC; a cgroup limits processes here instead")
async def test_process_rlimit_when_no_cgroup(workspace: Path) -> None:
    sandbox = BwrapSandbox(workspace, use_cgroup=False, limits=Limits(pids=32))
    try:
        result = await sandbox.exec("for i in $(seq 64); do sleep 5 & done; wait", timeout=30)
        assert "Resource temporarily unavailable" in result.stderr
    finally:
        await sandbox.close()


async def test_command_dies_with_m3code(workspace: Path) -> None:
    tag = f"{int(uuid.uuid4().int % 10**6)}"
    script = (
        "import asyncio; from pathlib import Path; from sandbox.bwrap import BwrapSandbox; "
        f"s = BwrapSandbox(Path({str(workspace)!r})); "
        f"asyncio.run(s.exec('echo started > started; setsid sleep 1006.{tag} & sleep 1007.{tag}'))"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    for _ in range(200):
        if (workspace / "started").exists():
            break
        await asyncio.sleep(0.05)
    assert (workspace / "started").exists()
    os.kill(child.pid, signal.SIGKILL)  # no cleanup of its own can run
    child.wait()
    assert await wait_no_host_process_with(f".{tag}") == []
    prune_cgroups()
    for parent in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/memory")):
        assert not list(parent.glob(f"m3code-{child.pid}-*"))
